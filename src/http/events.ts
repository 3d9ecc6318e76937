/**
 * What an `HttpClient` reports: the events it emits for each attempt and retry, and
 * its counters.
 *
 * @module
 */

/**
 * Why a request is retried: a retryable status, a timeout, a network error, or (through
 * `HttpClient.retryBody`) a body that broke off while the caller read it.
 */
export type RetryReason = "status" | "timeout" | "network" | "body";

/** Emitted before every attempt is sent. */
export interface HttpRequestEvent {
  /** The event type. */
  type: "request";
  /** The requested URL. */
  url: string;
  /** The attempt number, from 1. */
  attempt: number;
}

/** Emitted when the response headers of an attempt arrive. */
export interface HttpResponseEvent {
  /** The event type. */
  type: "response";
  /** The requested URL. */
  url: string;
  /** The HTTP status. */
  status: number;
  /** The attempt number, from 1. */
  attempt: number;
}

/** Emitted when a failed attempt is going to be retried, before waiting `delay` ms. */
export interface HttpRetryEvent {
  /** The event type. */
  type: "retry";
  /** The requested URL. */
  url: string;
  /** The number of the attempt that failed, from 1; the next attempt is `attempt + 1`. */
  attempt: number;
  /** How long the client waits before the next attempt, in milliseconds. */
  delay: number;
  /** Why the attempt failed. */
  reason: RetryReason;
  /** The HTTP status when `reason` is `status`, otherwise `undefined`. */
  status: number | undefined;
}

/** Everything `HttpClientOptions.onEvent` receives. */
export type HttpEvent = HttpRequestEvent | HttpResponseEvent | HttpRetryEvent;

/** Counters of an `HttpClient`. */
export interface HttpClientStats {
  /** Attempts sent, retries included. */
  requests: number;
  /** Retries scheduled. */
  retries: number;
  /** Requests holding a concurrency slot: waiting for a token, awaiting headers or streaming. */
  inFlight: number;
}
