// Package audit is DataSandbox's tamper-evident, append-only audit log.
//
// Every state change in the sandbox is appended to the log before it takes
// effect. Each entry is stored as one line of JSON in entries.jsonl; the
// entries are the leaves of an RFC 6962 Merkle tree whose hashes are kept in
// the flat file hashes, in the layout of golang.org/x/mod/sumdb/tlog. Each
// entry also carries, in its prev field, the tree hash of all entries before
// it, so that a verifier can name the first entry that was altered, dropped,
// inserted or reordered.
//
// [Log.Append] returns only after the entry and its hashes are written and
// fsynced. Concurrent appends are committed in batches (group commit): one
// write and one fsync of each file covers every entry of a batch, so
// throughput grows with the number of callers while a lone append still
// costs one write and fsync of each file.
//
// The log signs C2SP tlog-checkpoints (signed notes) with an Ed25519 key it
// keeps next to the entries. An export (see [Log.Export]) holds the entries,
// a checkpoint of the same size and the verifier key; a regulator checks it
// offline with [Verify], which needs nothing but this package.
//
// A Log is meant to be opened by one process at a time; on platforms with
// flock(2) Open enforces this with a lock on dir/lock.
package audit
