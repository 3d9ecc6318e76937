/**
 * A throwaway Redis for tests: Debian's `redis-server` (installed by `scripts/ensure_redis.sh`,
 * which the `test` task runs first) started on a free 127.0.0.1 port, in a temporary folder
 * removed by {@linkcode RedisServer.stop}.
 *
 * By default persistence is off (`--save '' --appendonly no`): a restart starts empty, as a
 * production Redis without persistence would after a crash. With `{ persist: true }` the
 * append-only file is on (`--appendonly yes --appendfsync everysec` in the temporary folder),
 * and since {@linkcode RedisServer.restart} stops Redis gracefully (SIGTERM flushes the file), a
 * restart keeps every key: that is the setting a queue that must survive a Redis restart needs,
 * and the one the "Redis restarted mid-run" tests use.
 *
 * @module
 */

import { join } from "node:path";

/** A running `redis-server`. */
export interface RedisServer {
  /** `redis://127.0.0.1:PORT`. */
  url: string;
  /** The port it listens on. */
  port: number;
  /** Stops it and starts it again on the same port (and, with `persist`, the same data). */
  restart(): Promise<void>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startRedis}. */
export interface StartRedisOptions {
  /** Keep the data across {@linkcode RedisServer.restart} (append-only file on).
   * @default {false} */
  persist?: boolean;
}

const READY_TIMEOUT_MS = 10_000;

/** A free TCP port on 127.0.0.1 (free when asked: the server binds it right after). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Whether `PING` on the port answers `+PONG`. */
async function pong(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const read = await conn.read(buffer);
    return read !== null && new TextDecoder().decode(buffer.subarray(0, read)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

async function readLog(path: string): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trim().split("\n").slice(-5).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts `redis-server` on a free 127.0.0.1 port.
 *
 * @param options Persistence.
 * @returns The server, ready for connections.
 * @throws {Error} When `redis-server` is not installed or does not become ready.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "all_docs_redis_" });
  const port = freePort();
  const log = join(dir, "redis.log");
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--dir",
    dir,
    "--logfile",
    log,
    "--maxmemory-policy",
    "noeviction",
    ...(options.persist
      ? ["--appendonly", "yes", "--appendfsync", "everysec"]
      : ["--appendonly", "no"]),
  ];
  let child: Deno.ChildProcess | undefined;

  async function start(): Promise<void> {
    try {
      child = new Deno.Command("redis-server", {
        args,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      })
        .spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(
          "redis-server is not installed: run `bash scripts/ensure_redis.sh` (the test task does)",
        );
      }
      throw error;
    }
    const until = Date.now() + READY_TIMEOUT_MS;
    const exited = child.status.then(() => true);
    while (!(await pong(port))) {
      const gone = await Promise.race([exited, new Promise((r) => setTimeout(r, 20, false))]);
      if (gone || Date.now() > until) {
        await halt();
        throw new Error(`redis-server did not start on port ${port}:\n${await readLog(log)}`);
      }
    }
  }

  async function halt(): Promise<void> {
    const running = child;
    child = undefined;
    if (!running) return;
    try {
      running.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await running.status;
  }

  try {
    await start();
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async restart() {
      await halt();
      await start();
    },
    async stop() {
      await halt();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
