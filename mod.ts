/**
 * _all_docs: mirror npm registry metadata at scale.
 *
 * The core is runtime-agnostic: it takes an injected `fetch` (through {@linkcode HttpClient}), a
 * storage driver and a clock, and uses web standards only. The exports below are grouped by how
 * often a user needs them:
 *
 * 1. **Jobs**: refresh partitions from `_all_docs`, follow `_changes` to keep them current,
 *    fetch or sync packuments, build the index, export the cache, report a partition set's
 *    status.
 * 2. **Cache and storage**: {@linkcode Cache} over any {@linkcode StorageDriver}, the key format,
 *    and the errors a caller branches on.
 * 3. **HTTP**: {@linkcode HttpClient} (retries, `Retry-After`, rate limit, timeouts) and its
 *    errors.
 * 4. **CouchDB and npm rules**: reading a key range, pivots, package names, media types, the
 *    corgi derivation.
 * 5. **Worker runtime**: work items, the queue engine contract, the retry policy, the
 *    {@linkcode Worker} core and its handlers (the worker API is the `./worker` export, the
 *    `memory` engine `./queues/memory`).
 * 6. **Views**: define views over cached documents, scan them (on worker threads too), join,
 *    enrich and map-reduce them, with expressions that are parsed, never evaluated.
 * 7. **Runtime**: the clock and the version.
 *
 * Storage drivers are subpath exports (`./drivers/memory`, `./drivers/fs`, `./drivers/deno_kv`,
 * `./drivers/s3`, `./drivers/cloudflare_kv`, `./drivers/cloudflare_r2`); the read replica's Hono
 * app is `./replica`.
 *
 * @example Cache an entry in memory
 * ```ts
 * import { Cache, packumentKey } from "./mod.ts";
 * import { MemoryDriver } from "./drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const key = packumentKey("npm", "left-pad");
 * await cache.put(key, new TextEncoder().encode("{}"), { status: 200 });
 * console.assert(await cache.has(key));
 * ```
 *
 * @module
 */

// 1. Jobs
export {
  type FailedPartition,
  type RefreshEvent,
  refreshPartitions,
  type RefreshPartitionsOptions,
  type RefreshSummary,
} from "./src/jobs/refresh_partitions.ts";
export {
  fetchPackument,
  type FetchPackumentOptions,
  fetchPackuments,
  type FetchSummary,
  type PackumentOutcome,
  type PackumentResult,
  type RegistryTarget,
} from "./src/jobs/fetch_packuments.ts";
export {
  syncPackumentRows,
  syncPackuments,
  type SyncPackumentsOptions,
  type SyncSummary,
} from "./src/jobs/sync_packuments.ts";
export { indexBatches, indexRows } from "./src/jobs/create_index.ts";
export {
  indexLines,
  type IndexLinesOptions,
  type IndexList,
  isIndexText,
  parseIndexLines,
} from "./src/jobs/index_lines.ts";
export { exportEntries, type ExportOptions } from "./src/jobs/export.ts";
export {
  DEFAULT_BATCH_CHANGES,
  DEFAULT_WINDOW,
  followChanges,
  type FollowChangesOptions,
  type FollowEvent,
  type FollowPackumentOptions,
  FollowStartError,
  type FollowSummary,
} from "./src/jobs/follow_changes.ts";
export { compareSeqs, type FollowStart } from "./src/jobs/follow_start.ts";
export {
  applyChanges,
  type ApplyChangesOptions,
  type ApplySummary,
  ChangeBatch,
  type EditablePartition,
  listEditablePartitions,
} from "./src/jobs/apply_changes.ts";
export {
  type CachedPartition,
  type FailedPartitionStatus,
  listCachedPartitions,
  type ListCachedPartitionsOptions,
  type PartitionSetStatus,
  partitionSetStatus,
  type PartitionSetStatusOptions,
} from "./src/jobs/partition_status.ts";

// 2. Cache and storage
export {
  type BodyEncoding,
  Cache,
  type CacheEntry,
  type CacheEntryInfo,
  CacheIntegrityError,
  type CacheMetadata,
  type CacheOptions,
  type CacheStats,
  type Freshness,
  type GetOptions,
  type PutOptions,
  type Sha256Hasher,
} from "./src/storage/cache.ts";
export {
  compareKeys,
  type ListOptions,
  type StaleWrite,
  type StorageDriver,
  StorageError,
  type StorageErrorOptions,
  type StorageLimits,
  type StorageValue,
  type SweepOptions,
} from "./src/storage/driver.ts";
export {
  KEY_VERSION,
  type KeyParts,
  keyPrefix,
  originFromKey,
  originKey,
  packumentKey,
  type PackumentKeyParts,
  parseKey,
  partitionKey,
  type PartitionKeyParts,
  type Representation,
  validateOriginKey,
} from "./src/storage/keys.ts";
export {
  listPartitionSets,
  type PartitionSetRecord,
  type PartitionState,
  type PartitionStatus,
  type PassRecord,
} from "./src/storage/checkpoint.ts";
export {
  followerKey,
  type FollowerState,
  readFollowerState,
  writeFollowerState,
} from "./src/storage/follower_checkpoint.ts";

// 3. HTTP
export {
  type ConditionalRequest,
  type FetchFunction,
  HttpClient,
  type HttpClientOptions,
  type HttpClientStats,
  type HttpEvent,
  type HttpRequestEvent,
  type HttpResponseEvent,
  type HttpRetryEvent,
  type RequestBody,
  type RequestOptions,
  type RetryReason,
} from "./src/http/client.ts";
export { BadResponseError, HttpError, type HttpErrorOptions } from "./src/http/errors.ts";

// 4. CouchDB and npm rules
export {
  type AllDocsPage,
  allDocsUrl,
  type RangeRead,
  readRange,
  type ReadRangeOptions,
} from "./src/couchdb/all_docs.ts";
export { type AllDocsRow, type KeyRange, MAX_PAGE_LIMIT } from "./src/couchdb/rows.ts";
export {
  type Change,
  type ChangesPage,
  type ChangesReadOptions,
  changesUrl,
  readChanges,
  readUpdateSeq,
  type Seq,
  seqNumber,
} from "./src/couchdb/changes.ts";
export { partitionRows } from "./src/couchdb/partition_lines.ts";
export {
  emptyPatchCounts,
  type PartitionEdit,
  type PatchCounts,
  patchPartition,
  revWins,
} from "./src/couchdb/partition_patch.ts";
export {
  parsePivots,
  type PartitionRange,
  partitionSetId,
  PivotError,
  rangesFromPivots,
  validatePivots,
} from "./src/couchdb/pivots.ts";
export {
  encodePackageName,
  type NameList,
  type NameListProblem,
  packageNameProblem,
  parseNameList,
} from "./src/npm/package_name.ts";
export {
  ACCEPT,
  acceptsAbbreviated,
  CORGI_MEDIA_TYPE,
  FULL_MEDIA_TYPE,
} from "./src/npm/media_types.ts";
export {
  ABBREVIATED_VERSION_FIELDS,
  abbreviatePackument,
  abbreviateVersion,
} from "./src/npm/corgi.ts";
export {
  abbreviatedStream,
  type AbbreviationPlan,
  planAbbreviation,
} from "./src/npm/corgi_stream.ts";

// 5. Worker runtime (the worker API is the "./worker" export; engines are "./queues/*")
export {
  type ChangesPayload,
  itemId,
  MAX_BATCH_NAMES,
  MAX_PRIORITY,
  MIN_PRIORITY,
  narrowPackuments,
  type NewItem,
  type PackumentKind,
  type PackumentPayload,
  type PartitionPayload,
  type PartitionSetPayload,
  type PayloadOf,
  toWorkItem,
  validatePayload,
  WORK_ITEM_TYPES,
  type WorkItem,
  WorkItemError,
  type WorkItemType,
} from "./src/worker/items.ts";
export type {
  ConsumeOptions,
  DeliveryHandler,
  EnqueueResult,
  ItemState,
  ItemStatus,
  Outcome,
  QueueEngine,
  QueueStats,
} from "./src/worker/queue.ts";
export {
  type Classified,
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  PermanentError,
  retryDelay,
  type RetryPolicy,
  retryPolicy,
} from "./src/worker/retry.ts";
export {
  eventLine,
  type Handler,
  type HandlerContext,
  MAX_WORKER_CONCURRENCY,
  PartialFailure,
  toWorkItems,
  Worker,
  type WorkerEvent,
  type WorkerOptions,
} from "./src/worker/worker.ts";
export { type WorkerHandlerOptions, workerHandlers } from "./src/worker/handlers.ts";

// 6. Views
export {
  checkViewDefinition,
  deleteView,
  listViews,
  loadView,
  saveView,
  type ViewDefinition,
  viewDocumentPrefix,
  type ViewType,
} from "./src/views/definition.ts";
export {
  listSuffixes,
  type ScanOptions,
  scanView,
  type ScanWorkers,
  viewSide,
} from "./src/views/query.ts";
export {
  type BatchResult,
  type JoinMode,
  type MapModule,
  type ScanSide,
  type ScanTask,
  type SkippedDocument,
} from "./src/views/scan.ts";
export { JOIN_MODES, type JoinOptions, joinViews } from "./src/views/join.ts";
export {
  compileEnrichment,
  type EnrichEvent,
  type Enrichment,
  EnrichMissingError,
  type EnrichOptions,
  ON_MISSING,
  type OnMissing,
} from "./src/views/enrich.ts";
export { mapReduce, type MapReduceOptions } from "./src/views/map_reduce.ts";
export {
  type CompiledSelect,
  compileSelect,
  compileWhere,
  type PathGetter,
  type Predicate,
  type SelectField,
  type SelectOptions,
} from "./src/views/expressions.ts";
export { ViewExpressionError } from "./src/views/expression_error.ts";
export { type RecordFormat } from "./src/views/format.ts";
export { type StorageAnswer, type StorageRequest } from "./src/views/storage_messages.ts";
export {
  type ViewWorkerFactory,
  type ViewWorkerPort,
  type WorkerOpenMessage,
  type WorkerReply,
} from "./src/views/dispatch.ts";
export {
  serveViewWorker,
  type ServeViewWorkerOptions,
  type ViewWorkerScope,
} from "./src/views/worker.ts";

// 7. Runtime
export { type Clock, systemClock } from "./src/clock.ts";
export { VERSION } from "./src/version.ts";
