/**
 * Repeated enqueueing of one item on the `redis` queue engine: the body of
 * `BullMqQueue.schedule`, kept apart from the engine.
 *
 * A BullMQ job scheduler named after the item's id (`schedule%3A` + its job id) adds a job every
 * `everyMs`, the first at once, whichever worker process is running: calling this again (another
 * process starting with the same schedule) replaces the schedule rather than adding one. Each
 * such job carries the item as `scheduled` and is removed once done; the engine's processor
 * enqueues the item instead of running a handler, so while the item is queued or running the
 * firing is a duplicate, and a schedule never runs two at once. The next firing counts as one
 * queued (delayed) job in the engine's stats.
 *
 * @module
 */

import type { WorkItem } from "../src/worker/items.ts";
import { describe } from "../src/_util/describe.ts";

/** What scheduling needs of a BullMQ `Queue`. */
export interface SchedulingQueue {
  upsertJobScheduler(
    id: string,
    repeat: { every: number },
    template: {
      name: string;
      data: { payload: null; priority: number; scheduled: WorkItem };
      opts: { removeOnComplete: true; removeOnFail: true; stackTraceLimit: 0 };
    },
  ): Promise<unknown>;
  removeJobScheduler(id: string): Promise<unknown>;
}

/**
 * Schedules `item` on `queue` every `everyMs` ms, or removes its schedule (see the module doc).
 *
 * @param queue The engine's BullMQ queue.
 * @param jobId The item's job id (`encodeJobId(item.id)`).
 * @param item The item.
 * @param everyMs The period in ms (1,000 to 2,147,483,647), or 0 to remove the schedule.
 * @throws {RangeError} When `everyMs` is out of range.
 */
export async function scheduleItem(
  queue: SchedulingQueue,
  jobId: string,
  item: WorkItem,
  everyMs: number,
): Promise<void> {
  if (everyMs !== 0 && !(Number.isInteger(everyMs) && everyMs >= 1000 && everyMs < 2 ** 31)) {
    throw new RangeError(
      `Cannot schedule an item: 'everyMs' must be 0 or an integer from 1000 to 2147483647, received ${
        describe(everyMs)
      }`,
    );
  }
  const schedulerId = `schedule%3A${jobId}`;
  if (everyMs === 0) {
    await queue.removeJobScheduler(schedulerId);
    return;
  }
  await queue.upsertJobScheduler(schedulerId, { every: everyMs }, {
    name: item.type,
    data: { payload: null, priority: item.priority, scheduled: item },
    opts: { removeOnComplete: true, removeOnFail: true, stackTraceLimit: 0 },
  });
}
