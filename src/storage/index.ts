// The storage layer's public surface: pick a backend from a URL, and read blobs with their integrity checked.
export { BlobCommitResult, BlobInfo, BlobNotFoundError, BlobReadOptions, BlobStore, BlobWriter, checkKey } from "./blob-store";
export { LocalBlobStore } from "./local";
export { S3BlobStore, S3Credentials, S3StoreOptions } from "./s3";
export { S3StorageError } from "./s3-errors";
export { describeStorage, openBlobStore, parseStorageUrl, StorageConfig, StorageConfigError, StorageUrlOptions } from "./url";
export { BlobIntegrityError, RecordedBlob, verifiedRead } from "./verify";
