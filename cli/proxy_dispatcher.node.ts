/**
 * The `undici` dispatcher of the Node CLI's proxies and `cafile` (`./proxy.node.ts`, which loads
 * this module only when one of them is set).
 *
 * @module
 */

import { Agent, Dispatcher, ProxyAgent, setGlobalDispatcher } from "undici";
import { bypassesProxy, type NetworkSettings } from "./proxy.node.ts";

const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443 };

/** Sends each request through the proxy for its scheme, or directly. */
class ProxyDispatcher extends Dispatcher {
  #direct: Agent;
  #http: Dispatcher;
  #https: Dispatcher;
  #noProxy: string;

  constructor(settings: NetworkSettings, ca: string | undefined) {
    super();
    const tls = ca === undefined ? {} : { ca };
    this.#direct = new Agent({ connect: tls });
    const proxy = (uri: string | undefined) =>
      uri === undefined
        ? this.#direct
        // http URLs go to an http proxy as absolute-URI requests, as npm sends them; https
        // ones through a CONNECT tunnel.
        : new ProxyAgent({ uri, proxyTunnel: false, connect: tls, requestTls: tls, proxyTls: tls });
    this.#http = proxy(settings.httpProxy);
    this.#https = settings.httpsProxy === settings.httpProxy
      ? this.#http
      : proxy(settings.httpsProxy);
    this.#noProxy = settings.noProxy ?? "";
  }

  override dispatch(
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandlers,
  ): boolean {
    const url = new URL(String(options.origin));
    const port = Number(url.port) || DEFAULT_PORTS[url.protocol] || 0;
    const hostname = url.host.replace(/:\d*$/, "").toLowerCase();
    const target = bypassesProxy(this.#noProxy, hostname, port)
      ? this.#direct
      : url.protocol === "https:"
      ? this.#https
      : this.#http;
    return target.dispatch(options, handler);
  }

  override async close(): Promise<void> {
    await Promise.all([...new Set([this.#direct, this.#http, this.#https])].map((d) => d.close()));
  }

  override async destroy(): Promise<void> {
    await Promise.all(
      [...new Set([this.#direct, this.#http, this.#https])].map((d) => d.destroy()),
    );
  }
}

/**
 * Makes `fetch` send each request through the proxy `settings` name for its scheme, or directly.
 *
 * @param settings The proxies (at least one of them, or `cafile`, is set).
 * @param ca The certificates of `cafile`, replacing the default ones.
 */
export function installProxyDispatcher(settings: NetworkSettings, ca: string | undefined): void {
  setGlobalDispatcher(new ProxyDispatcher(settings, ca));
}
