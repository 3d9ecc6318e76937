/** Helpers for test harnesses that run a peer as a child process. */

/** A free TCP port on 127.0.0.1 (listen on port 0, note the port, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Keeps the last 64 KiB of a stream, so a failure can show what the process said. */
export async function drain(
  stream: ReadableStream<Uint8Array>,
  sink: { text: string },
): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    sink.text = (sink.text + decoder.decode(chunk, { stream: true })).slice(-65536);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Stops a harness's child once: SIGTERM unless it already exited, then waits for it and its
 * output, and removes its temporary directory. Every call returns the same promise.
 */
export function stopper(
  child: Deno.ChildProcess,
  drained: Promise<unknown>,
  dir: string,
): { exited(): boolean; close(): Promise<void> } {
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let closed: Promise<void> | undefined;
  return {
    exited: () => exited,
    close(): Promise<void> {
      closed ??= (async () => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch {
            // It exited in the meantime.
          }
        }
        await status;
        await drained;
        await Deno.remove(dir, { recursive: true });
      })();
      return closed;
    },
  };
}

/** A peer running under Node, with its output kept for error messages. */
export interface NodePeer {
  /** What the peer printed so far (the last 64 KiB of each stream). */
  output(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** Stops it once and removes its directory; every call returns the same promise. */
  close(): Promise<void>;
}

/** Starts `node ...args` in `dir` (removed again by `close()`), keeping what it prints. */
export function spawnNode(args: string[], dir: string): NodePeer {
  const child = new Deno.Command("node", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = { text: "" };
  const err = { text: "" };
  const drained = Promise.all([drain(child.stdout, out), drain(child.stderr, err)]);
  const { exited, close } = stopper(child, drained, dir);
  return { output: () => `stdout: ${out.text}\nstderr: ${err.text}`, exited, close };
}
