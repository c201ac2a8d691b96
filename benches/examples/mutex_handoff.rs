//! A contended lock handed back and forth between two processes: shmring's
//! `SharedMutex` (the public API, named shared memory), with its default wait
//! strategy (`shmring`: retry the lock for 50 µs before parking) and parking at
//! once (`shmring-park`, as glibc's robust mutex does), against glibc's robust
//! process-shared `pthread_mutex` (`PTHREAD_PROCESS_SHARED`,
//! `PTHREAD_MUTEX_ROBUST`, in a page of `/dev/shm` both processes map), run
//! alternately in the same run (`/work/shared/BENCHMARKING.md` in the project's
//! notes: ratios from one run only).
//!
//! ```text
//! mutex_handoff [ROUNDS [HANDOFFS [PAUSE]]]
//!     default 5 rounds of 20000 hand-offs; PAUSE spin hints (default 0) after
//!     each unlock that found it was not this side's turn, so that the side
//!     waiting for its turn does not take the lock back at once
//! ```
//!
//! Each round runs the three, in an order that rotates. A run: the parent and
//! a child process (this program again), pinned to two CPUs when allowed, each
//! loop `lock; if turn is mine { turn = the other's; count += 1 }; unlock` until
//! `count` reaches `HANDOFFS`: every count is the lock passing from one process
//! to the other: to a locker asleep on its futex, or one still retrying. Prints
//! each run's ns per hand-off, then the medians and their ratios to glibc's
//! (≤ 1: shmring hands off at least as fast).
//! Correctness first: each side checks it made exactly half the hand-offs.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::ptr::{self, NonNull};
use std::time::Instant;

use shmring::state::{SharedMutex, SharedMutexBuilder};
use shmring::{SegmentBuilder, WaitStrategy};
use shmring_benches::cross::{allowed_cpus, pin_to};

/// The shared words of a run: whose turn it is (1 parent, 2 child, 0 nobody
/// yet) and the hand-offs made.
#[derive(Clone, Copy)]
struct Words {
    turn: u64,
    count: u64,
}

/// A lock both processes take, with the two words behind it.
trait Lock {
    /// Runs `f` on the words under the lock.
    fn with(&self, f: &mut dyn FnMut(&mut Words));
}

impl Lock for SharedMutex<[u64; 2]> {
    fn with(&self, f: &mut dyn FnMut(&mut Words)) {
        let mut guard = self.lock().expect("nobody dies here");
        let mut words = Words {
            turn: guard[0],
            count: guard[1],
        };
        f(&mut words);
        *guard = [words.turn, words.count];
    }
}

/// A page of `/dev/shm` mapped shared: a robust process-shared pthread mutex
/// at offset 0, the words at 128.
struct Pthread {
    map: NonNull<u8>,
    _file: File,
}

const PAGE: usize = 4096;

impl Pthread {
    fn map(path: &str, create: bool) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)
            .expect("open the pthread page");
        if create {
            file.set_len(PAGE as u64).expect("size the page");
        }
        // SAFETY: a fresh shared mapping of the file's one page; no existing
        // memory is touched.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        let this = Self {
            map: NonNull::new(p.cast()).expect("mmap returned null"),
            _file: file,
        };
        if create {
            // SAFETY: the page is ours alone until the child is spawned; the
            // attribute object lives on this frame and is destroyed once.
            unsafe {
                let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
                assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
                assert_eq!(
                    libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                    0
                );
                assert_eq!(
                    libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                    0
                );
                assert_eq!(libc::pthread_mutex_init(this.mutex(), &attr), 0);
                assert_eq!(libc::pthread_mutexattr_destroy(&mut attr), 0);
            }
        }
        this
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.map.as_ptr().cast()
    }

    fn words(&self) -> *mut [u64; 2] {
        // SAFETY: offset 128 of a 4096-byte mapping, 8-aligned.
        unsafe { self.map.as_ptr().add(128).cast() }
    }
}

impl Drop for Pthread {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once; nothing borrows it any more.
        unsafe { libc::munmap(self.map.as_ptr().cast(), PAGE) };
    }
}

impl Lock for Pthread {
    fn with(&self, f: &mut dyn FnMut(&mut Words)) {
        // SAFETY: an initialised robust process-shared mutex in a live mapping;
        // the words are touched only while it is held.
        unsafe {
            assert_eq!(
                libc::pthread_mutex_lock(self.mutex()),
                0,
                "nobody dies here"
            );
            let w = &mut *self.words();
            let mut words = Words {
                turn: w[0],
                count: w[1],
            };
            f(&mut words);
            *w = [words.turn, words.count];
            assert_eq!(libc::pthread_mutex_unlock(self.mutex()), 0);
        }
    }
}

/// Hands the lock to the other side until `total` hand-offs are made; returns
/// how many this side made.
fn hand_off(lock: &dyn Lock, me: u64, total: u64, pause: u64) -> u64 {
    let other = 3 - me;
    let (mut mine, mut done) = (0, false);
    while !done {
        let mut waited = false;
        lock.with(&mut |w| {
            if w.count >= total {
                done = true;
            } else if w.turn == me {
                w.turn = other;
                w.count += 1;
                mine += 1;
            } else {
                waited = true;
            }
        });
        if waited {
            for _ in 0..pause {
                std::hint::spin_loop();
            }
        }
    }
    mine
}

fn spawn_child(kind: &str, name: &str, total: u64, pause: u64, cpu: Option<usize>) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let cpu = cpu.map_or("none".to_owned(), |c| c.to_string());
    Command::new(exe)
        .args([
            "child",
            kind,
            name,
            &total.to_string(),
            &pause.to_string(),
            &cpu,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child")
}

/// The builder of a `shmring` kind's mutex named `name`.
fn builder(kind: &str, name: &str) -> SharedMutexBuilder {
    let builder = SharedMutexBuilder::shm(name);
    if kind == "shmring-park" {
        builder.wait_strategy(WaitStrategy::Park)
    } else {
        builder
    }
}

/// One run of `kind`: ns per hand-off.
fn run(kind: &str, total: u64, pause: u64, cpus: &[usize]) -> f64 {
    let name = format!("bench-handoff-{}-{kind}", std::process::id());
    let path = format!("/dev/shm/{name}");
    let child_cpu = cpus.get(1).copied();
    let lock: Box<dyn Lock> = match kind {
        "glibc" => Box::new(Pthread::map(&path, true)),
        _ => Box::new(builder(kind, &name).create::<[u64; 2]>().expect("create")),
    };
    let mut child = spawn_child(kind, &name, total, pause, child_cpu);
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .expect("the child's ready line");
    assert_eq!(ready.trim(), "ready", "the child did not start");
    let started = Instant::now();
    lock.with(&mut |w| w.turn = 1);
    let mine = hand_off(&*lock, 1, total, pause);
    let elapsed = started.elapsed();
    assert!(child.wait().expect("wait").success(), "the child failed");
    assert_eq!(mine, total / 2, "{kind}: the parent's share of hand-offs");
    lock.with(&mut |w| assert_eq!(w.count, total, "{kind}: hand-offs made"));
    if kind == "glibc" {
        let _ = std::fs::remove_file(&path);
    }
    elapsed.as_nanos() as f64 / total as f64
}

fn child(args: &[String]) {
    let [kind, name, total, pause, cpu] = args else {
        panic!("child KIND NAME TOTAL PAUSE CPU")
    };
    let pause: u64 = pause.parse().expect("PAUSE");
    if let Ok(cpu) = cpu.parse() {
        pin_to(cpu).expect("pin the child");
    }
    let total: u64 = total.parse().expect("TOTAL");
    let lock: Box<dyn Lock> = match kind.as_str() {
        "glibc" => Box::new(Pthread::map(&format!("/dev/shm/{name}"), false)),
        _ => Box::new(builder(kind, name).open::<[u64; 2]>().expect("open")),
    };
    println!("ready");
    let mine = hand_off(&*lock, 2, total, pause);
    assert_eq!(mine, total / 2, "{kind}: the child's share of hand-offs");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    let rounds: usize = args.first().map_or(5, |a| a.parse().expect("ROUNDS"));
    let total: u64 = args.get(1).map_or(20_000, |a| a.parse().expect("HANDOFFS"));
    let total = total + total % 2; // each side makes half
    let pause: u64 = args.get(2).map_or(0, |a| a.parse().expect("PAUSE"));
    let cpus = allowed_cpus().unwrap_or_default();
    let pinned = cpus.len() >= 2 && pin_to(cpus[0]).is_ok();
    let cpus = if pinned { cpus } else { Vec::new() };
    println!(
        "{rounds} rounds of {total} hand-offs, pause {pause}, {}",
        if pinned {
            format!("parent on CPU {}, child on CPU {}", cpus[0], cpus[1])
        } else {
            "not pinned".to_owned()
        }
    );
    let kinds = ["glibc", "shmring", "shmring-park"];
    let mut ns: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..kinds.len() {
            let k = (k + round) % kinds.len();
            let got = run(kinds[k], total, pause, &cpus);
            println!("round {round}: {:12} {got:9.0} ns per hand-off", kinds[k]);
            ns[k].push(got);
        }
    }
    let [glibc, spin, park] = ns.map(|mut v| median(&mut v));
    println!(
        "median ns per hand-off: glibc robust pshared {glibc:.0}, shmring {spin:.0} \
         (ratio {:.2}), shmring-park {park:.0} (ratio {:.2})",
        spin / glibc,
        park / glibc
    );
}
