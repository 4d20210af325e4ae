//! Small files written from several threads: creating a file costs the
//! kernel far more than its few bytes cost to inflate, so the unpacking
//! thread (inflating, parsing, checking every rule) hands each small
//! file's whole content to a pool that creates, writes and hashes it,
//! and goes on with the next entry.
//!
//! The unpacking thread still decides everything: names, parents (made
//! before a file is handed over), duplicates, limits. A writer only
//! creates a new file (`create_new`: never an existing path, so never
//! through a link) at the path it is given. Memory stays bounded: at most
//! `QUEUE` files of at most [`MAX_BYTES`] wait, and one more per writer is
//! in hand.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::ExtractError;

/// Largest file handed to the writers; larger ones are streamed by the
/// unpacking thread, which never holds a whole file.
pub(super) const MAX_BYTES: u64 = 128 * 1024;
/// Files waiting for a writer.
const QUEUE: usize = 8;
/// Most writers an unpack starts.
const MAX_WRITERS: usize = 4;

/// One file to write.
pub(super) struct Job {
    /// Its key (`/`-separated path below the destination).
    pub key: Vec<u8>,
    pub path: PathBuf,
    pub content: Vec<u8>,
    /// Permission bits, already as installed.
    pub mode: u32,
    pub mtime: Option<i64>,
}

/// A file written: its key and the sha256 of its content.
pub(super) type Written = (Vec<u8>, [u8; 32]);
type Done = Result<Written, ExtractError>;

/// The writer threads of one unpack.
pub(super) struct Writers {
    jobs: Option<SyncSender<Job>>,
    finished: Finished,
    threads: Vec<JoinHandle<()>>,
    /// Set on the first failure, and when the unpack ends early: writers
    /// then drop what is queued instead of writing it.
    cancel: Arc<AtomicBool>,
}

/// The files handed to a thread and not yet reported written.
struct Finished {
    done: Receiver<Done>,
    pending: usize,
}

impl Finished {
    fn new(done: Receiver<Done>) -> Self {
        Finished { done, pending: 0 }
    }

    /// The files written since the last call: those reported so far, or
    /// (`wait`) every one handed over. The first error is returned.
    fn collect(&mut self, wait: bool) -> Result<Vec<Written>, ExtractError> {
        let mut written = Vec::new();
        while self.pending > 0 {
            let done = if wait {
                self.done.recv().map_err(|_| gone(PathBuf::new()))?
            } else {
                match self.done.try_recv() {
                    Ok(done) => done,
                    Err(_) => break,
                }
            };
            self.pending -= 1;
            written.push(done?);
        }
        Ok(written)
    }
}

impl Writers {
    /// Starts the writers (one per core, at most [`MAX_WRITERS`]: file
    /// creation waits on the kernel more than it computes); `None` when no
    /// thread can be started, and the unpacking thread writes every file
    /// itself.
    pub(super) fn start() -> Option<Writers> {
        let count = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WRITERS);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let (done_tx, done) = std::sync::mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..count {
            let queue = Arc::clone(&queue);
            let done_tx: Sender<Done> = done_tx.clone();
            let cancel = Arc::clone(&cancel);
            let spawned = std::thread::Builder::new()
                .name(format!("copkg-writer-{n}"))
                .spawn(move || work(&queue, &done_tx, &cancel));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(_) => break,
            }
        }
        if threads.is_empty() {
            return None;
        }
        Some(Writers {
            jobs: Some(jobs),
            finished: Finished::new(done),
            threads,
            cancel,
        })
    }

    /// Hands a file over. Returns the files written meanwhile; the first
    /// error of any writer ends the unpack.
    pub(super) fn send(&mut self, job: Job) -> Result<Vec<Written>, ExtractError> {
        let mut written = self.finished.collect(false)?;
        let path = job.path.clone();
        let Some(jobs) = &self.jobs else {
            return Err(gone(path));
        };
        jobs.send(job).map_err(|_| gone(path))?;
        self.finished.pending += 1;
        written.extend(self.finished.collect(false)?);
        Ok(written)
    }

    /// Waits for every file handed over; returns those written since the
    /// last call.
    pub(super) fn drain(&mut self) -> Result<Vec<Written>, ExtractError> {
        self.finished.collect(true)
    }
}

impl Drop for Writers {
    /// Ends the writers, dropping what is still queued, and waits for them:
    /// no file is created in the destination once the unpack has returned
    /// (the caller removes it on failure).
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A writer's loop: the next file from the queue, written (or, once the
/// unpack is cancelled, dropped), reported, until the queue closes.
fn work(queue: &Mutex<Receiver<Job>>, done: &Sender<Done>, cancel: &AtomicBool) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = if cancel.load(Ordering::SeqCst) {
            Err(ExtractError::Write {
                path: job.path.clone(),
                source: io::Error::other("unpacking was cancelled"),
            })
        } else {
            write(job)
        };
        // The real error is reported before the others are told to stop
        // (and report only "cancelled").
        let failed = result.is_err();
        if done.send(result).is_err() {
            return;
        }
        if failed {
            cancel.store(true, Ordering::SeqCst);
        }
    }
}

fn gone(path: PathBuf) -> ExtractError {
    ExtractError::Write {
        path,
        source: io::Error::other("a file-writing thread ended"),
    }
}

/// Creates one file with its content, mode and mtime; returns its key and
/// digest.
fn write(job: Job) -> Done {
    let write_err = |source| ExtractError::Write {
        path: job.path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(job.mode)
        .open(&job.path)
        .map_err(write_err)?;
    file.write_all(&job.content).map_err(write_err)?;
    super::finish_file(&file, job.mode, job.mtime).map_err(write_err)?;
    Ok((job.key, Sha256::digest(&job.content).into()))
}

/// Bytes of a large file handed over at a time.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks in circulation (filling, queued, being written).
const CHUNKS: usize = 4;

/// A large file to write, created by the unpacking thread.
pub(super) struct Large {
    pub key: Vec<u8>,
    pub path: PathBuf,
    pub file: std::fs::File,
    pub size: u64,
    /// Permission bits, already as installed.
    pub mode: u32,
    pub mtime: Option<i64>,
}

/// What the unpacking thread sends the streamer.
enum Msg {
    /// The next file.
    Open(Large),
    /// The next bytes of the open file (the first `usize` of the chunk).
    Data(Vec<u8>, usize),
    /// The open file is complete.
    Close,
}

/// One thread writing (and hashing) large files as the unpacking thread
/// inflates them, a chunk at a time: the unpacking thread only inflates.
pub(super) struct Streamer {
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Vec<u8>>,
    finished: Finished,
    thread: Option<JoinHandle<()>>,
}

impl Streamer {
    /// Starts the streamer; `None` when no thread can be started.
    pub(super) fn start() -> Option<Streamer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(CHUNKS);
        let (free_tx, free) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        for _ in 0..CHUNKS {
            let _ = free_tx.send(vec![0; CHUNK_BYTES]);
        }
        let thread = std::thread::Builder::new()
            .name("copkg-streamer".to_owned())
            .spawn(move || stream(&rx, &free_tx, &done_tx))
            .ok()?;
        Some(Streamer {
            tx: Some(tx),
            free,
            finished: Finished::new(done),
            thread: Some(thread),
        })
    }

    fn send(&self, msg: Msg, path: &std::path::Path) -> Result<(), ExtractError> {
        match &self.tx {
            Some(tx) => tx.send(msg).map_err(|_| gone(path.to_owned())),
            None => Err(gone(path.to_owned())),
        }
    }

    /// Starts a large file; returns the files finished meanwhile.
    pub(super) fn open(&mut self, large: Large) -> Result<Vec<Written>, ExtractError> {
        let written = self.finished.collect(false)?;
        let shown = large.path.clone();
        self.send(Msg::Open(large), &shown)?;
        self.finished.pending += 1;
        Ok(written)
    }

    /// A chunk to fill (waits while every chunk is in flight).
    pub(super) fn chunk(&self, path: &std::path::Path) -> Result<Vec<u8>, ExtractError> {
        self.free.recv().map_err(|_| gone(path.to_owned()))
    }

    /// Hands over the first `len` bytes of `chunk`.
    pub(super) fn data(
        &self,
        chunk: Vec<u8>,
        len: usize,
        path: &std::path::Path,
    ) -> Result<(), ExtractError> {
        self.send(Msg::Data(chunk, len), path)
    }

    /// Ends the open file.
    pub(super) fn close(&self, path: &std::path::Path) -> Result<(), ExtractError> {
        self.send(Msg::Close, path)
    }

    /// Waits for every file handed over; returns those finished since the
    /// last call.
    pub(super) fn drain(&mut self) -> Result<Vec<Written>, ExtractError> {
        self.finished.collect(true)
    }
}

impl Drop for Streamer {
    /// Ends the streamer and waits for it: nothing is written in the
    /// destination once the unpack has returned.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The streamer's loop: one file at a time, in the order they come.
fn stream(rx: &Receiver<Msg>, free: &Sender<Vec<u8>>, done: &Sender<Done>) {
    struct Open {
        large: Large,
        hasher: Sha256,
        unflushed: usize,
        failed: Option<io::Error>,
    }
    let mut open: Option<Open> = None;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Open(large) => {
                open = Some(Open {
                    large,
                    hasher: Sha256::new(),
                    unflushed: 0,
                    failed: None,
                });
            }
            Msg::Data(chunk, len) => {
                if let Some(o) = &mut open
                    && o.failed.is_none()
                {
                    match o.large.file.write_all(&chunk[..len]) {
                        Ok(()) => {
                            o.hasher.update(&chunk[..len]);
                            o.unflushed += len;
                            if o.unflushed >= super::WRITEBACK_CHUNK_BYTES {
                                super::start_writeback(&o.large.file);
                                o.unflushed = 0;
                            }
                        }
                        Err(e) => o.failed = Some(e),
                    }
                }
                let _ = free.send(chunk);
            }
            Msg::Close => {
                let Some(o) = open.take() else { continue };
                let large = o.large;
                let result = match o.failed {
                    Some(source) => Err(source),
                    None => {
                        if o.unflushed > 0 && large.size >= super::SMALL_FILE_BYTES {
                            super::start_writeback(&large.file);
                        }
                        super::finish_file(&large.file, large.mode, large.mtime)
                    }
                };
                let result = match result {
                    Ok(()) => Ok((large.key, o.hasher.finalize().into())),
                    Err(source) => Err(ExtractError::Write {
                        path: large.path,
                        source,
                    }),
                };
                if done.send(result).is_err() {
                    return;
                }
            }
        }
    }
}
