/**
 * The rows of `_all_docs` and the limits of its pages: a leaf module that the page reader, the
 * partition bodies, the merge and the replica share.
 *
 * @module
 */

/** The largest page npm answers: `limit` above it is answered 400. */
export const MAX_PAGE_LIMIT = 10_000;

/** The page size npm answers when a request names no `limit`. */
export const DEFAULT_PAGE_LIMIT = 1_000;

/** One row: a document id and its current revision. */
export interface AllDocsRow {
  /** The document id (the package name). */
  id: string;
  /** The current `_rev`. */
  rev: string;
}

/** A key range; `""` is an open end. */
export interface KeyRange {
  /** First key, inclusive, or `""`. */
  startKey: string;
  /** End key, exclusive, or `""`. */
  endKey: string;
}
