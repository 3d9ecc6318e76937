import assert from "node:assert/strict";
import { peekChanges } from "../../src/couchdb/changes.ts";

function page(entries: number, tail: string): string {
  const rows = [];
  for (let i = 1; i <= entries; i++) {
    rows.push(`{"seq":${i},"id":"p${i}","changes":[{"rev":"1-a"}]}`);
  }
  return `{"results":[\n${rows.join(",\n")}\n],\n${tail}`;
}

Deno.test("peekChanges() reads last_seq off the end of a page holding the limit", () => {
  assert.equal(peekChanges(page(3, '"last_seq":3}'), 3), 3);
  assert.equal(peekChanges(page(3, '"last_seq": 3,"pending":7}\n'), 2), 3);
  // CouchDB's opaque sequences, escapes included.
  assert.equal(peekChanges(page(2, '"last_seq":"2-g1A\\"AA"}'), 2), '2-g1A"AA');
});

Deno.test("peekChanges() guesses nothing when CouchDB's pending count after last_seq is 0", () => {
  // None pending: the last page, however full.
  assert.equal(peekChanges(page(3, '"last_seq":3,"pending":0}'), 3), undefined);
  assert.equal(peekChanges(page(3, '"last_seq":"3-g1A","pending": 0 }\n'), 3), undefined);
  // Some pending: the entries are counted still (an origin may cap its pages below the limit).
  assert.equal(peekChanges(page(3, '"last_seq":"3-g1A","pending": 1 }\n'), 3), "3-g1A");
  assert.equal(peekChanges(page(2, '"last_seq":2,"pending":5}'), 3), undefined);
  // A `pending` before last_seq (in an entry), or not the number 0: the entries are counted.
  const early = page(3, '"last_seq":3}').replace('"id":"p1"', '"id":"p1","pending":0');
  assert.equal(peekChanges(early, 3), 3);
  assert.equal(peekChanges(page(3, '"last_seq":3,"pending":null}'), 3), 3);
  assert.equal(peekChanges(page(3, '"last_seq":3,"pending":"0"}'), 3), 3);
});

Deno.test("peekChanges() gives no guess for a short page, or one without its end", () => {
  assert.equal(peekChanges(page(3, '"last_seq":3}'), 4), undefined);
  assert.equal(peekChanges(page(0, '"last_seq":0}'), 1), undefined);
  assert.equal(peekChanges(page(3, '"last_se'), 3), undefined);
  // Cut short inside the number: no guess of a shorter one.
  assert.equal(peekChanges(page(3, '"last_seq":12'), 3), undefined);
  assert.equal(peekChanges(page(3, '"last_seq":-1}'), 3), undefined);
  assert.equal(peekChanges(page(3, '"last_seq":""}'), 3), undefined);
  assert.equal(peekChanges(page(3, '"last_seq":null}'), 3), undefined);
});
