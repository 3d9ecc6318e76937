import { MemoryQueue } from "../../queues/memory.ts";
import { runQueueContract } from "../_support/queue_contract.ts";

Deno.test("memory queue meets the queue contract", (t) =>
  runQueueContract(t, { open: () => Promise.resolve(new MemoryQueue()) }));
