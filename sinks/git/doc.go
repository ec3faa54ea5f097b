// Package git is the sink that keeps the operators' "logbook" habit: a git repository of
// the replicated state with one commit per interval (default one hour), browsable with
// git log, git diff and git show, pushed to a remote after each commit.
//
// # What a commit holds
//
// The commit made for boundary B (every multiple of the interval, B = t.Truncate(Interval)
// in UTC) holds the exact replicated state at B: every record whose capture time is at or
// before B is applied, nothing after, the same state `mmreplicate restore --at B` writes.
// The tree layout is <source>/<relative path>. Whole files and append-only files are blobs
// (mode 100755 when the owner's execute bit is set, 100644 otherwise); symbolic links are
// git symlinks (mode 120000, the target as content); SQLite databases are committed as
// consistent standalone database files, built from their page records by a DBApplier.
// Folders exist in git only through the files they hold, so empty folders are not
// committed (restore still recreates them from the S3 store).
//
// The author and committer are "mmreplicate <mmreplicate@HOST>" with time B, and the
// message says which records went in:
//
//	mmreplicate vps-1 state at 2026-11-26T18:00:00Z
//
//	sequence 1200-1433
//	added 2, changed 5, removed 1
//
//	A sessions/agent-1/2026-11-26.jsonl
//	M workspaces/notes.md
//	D workspaces/old.txt
//
// A boundary whose state equals the previous commit's makes no commit (identical states
// give identical tree hashes, so the comparison is one hash). After downtime, the backlog
// of records is replayed and each boundary with a change gets its own commit.
//
// # How boundaries stay exact
//
// Records arrive in sequence order with never-decreasing capture times. The sink applies
// them to a local mirror of the state and, before applying the first record whose time is
// after the pending boundary B, commits the mirror, which at that moment holds exactly the
// records up to B. When no such record comes (a quiet host), a timer commits B once the
// wall clock passes B plus a grace of min(Interval/10, 30s) and no Write has arrived for a
// grace period: records travel from capture to the sink within seconds, so by then every
// record at or before B has arrived. A record that still arrives later (the pipeline was
// stalled for longer than the grace) cannot be put back into the commit for B: it is
// logged and goes into the next boundary's commit.
//
// # The mirror and crash safety
//
// The mirror lives in Options.StateDir: the state index (every live path with its kind,
// mode, size and chunk list), the bytes of append-only files and database images, and a
// cache of the content-addressed chunks whole files are made of (a whole file is never
// assembled on disk: its blob is streamed from its chunks at commit time). Every Write
// first appends its records to a write-ahead log and fsyncs it, then applies them; the
// index is checkpointed (content fsynced, the log emptied) after each boundary and
// whenever the log passes 64 MiB. After a
// crash the checkpoint is loaded and the log replayed; records are idempotent (an append
// truncates to its offset before writing), so re-applying what was half-applied is
// harmless, and a batch written again is recognised by its sequence numbers.
//
// Cached chunks that no live file refers to are removed once that has been so for
// ChunkRetention (default 7 days; checked after each boundary). They are not removed at
// once because the watcher sends a chunk only once per run: a file that changes back to
// earlier content, or a rename split across two boundaries, refers to chunks that will
// not travel again. A file whose chunks are gone all the same is committed as a pointer
// file (below) and logged.
//
// # Big files
//
// A file larger than Options.BigFileBytes (default 10 MiB) is committed as a small text
// pointer instead of its bytes, so the repository stays small:
//
//	mmreplicate-pointer v1
//	path workspaces/model.bin
//	kind file
//	size 734003200
//	sha256 9f2c…
//	blob blobs/3a/3a41… 131072
//	blob blobs/c0/c07e… 98304
//	fetch mmreplicate restore --at <this commit's time> --path 'workspaces/model.bin' --to DIR
//
// The bytes live in the S3 store: a whole file as the listed chunk blobs (concatenated in
// order they are the file; each blob's name is the SHA-256 of its bytes), an append-only
// file or a database in the host's segment objects (a "segments hosts/<host>/segments/"
// line instead of the blob lines). The simplest way to get the file is
// the fetch line: `mmreplicate restore --at <commit time> --path <source>/<path> --to DIR`,
// which rebuilds it from the store and checks every hash; the sha256 line checks the
// result.
//
// # Repository housekeeping
//
// Blobs, trees and commits are built directly with go-git's plumbing from the mirror,
// never by scanning a worktree. A path unchanged since the last commit reuses its blob
// hash (cached per path with the sequence number of its last change, which also holds
// after a crash and replay), so a commit costs in proportion to what changed, plus one
// tree object per changed folder. A commit with many new blobs stores them as one pack
// through the storer's pack writer (compressed in parallel at zlib's fastest level, as git
// itself does for loose objects), a commit with few as loose objects. Everything is made
// durable with a file-system sync before refs/heads/main moves (written atomically, as git
// does, through a lock file and a rename). The worktree of the repository is not checked
// out: use git log, git show, git archive or a clone. Every GCEvery commits `git gc
// --auto` runs when the git command is installed. Pushes run in the background after each
// commit, retried with backoff while the remote is down; local commits are never dropped
// and a later push carries all of them, in order.
//
// A path the mirror cannot commit is left out of that commit and logged, rather than
// stopping every later commit: a name git cannot hold (a ".git" or ".." component), a
// file whose path is also a folder of other files (the folder wins), a database without
// a DBApplier or whose pages could not be applied (until its next base image).
package git
