//! skiff-rust-threads: Rust std's threading for Skiff's differential tests.
//!
//! spawn/join with results, named threads with a custom stack size, Arc<Mutex>,
//! Condvar (bounded queue), RwLock, Barrier, mpsc channels (unbounded and bounded,
//! several producers), park/unpark, thread_local!, OnceLock, thread::scope,
//! thread::sleep and available_parallelism. Every line is printed by the main thread
//! after the workers are joined, so the output does not depend on scheduling. A
//! watchdog thread turns a hang into "FATAL watchdog: <phase> did not finish" and exit
//! status 98. The exit status is 1 if any check failed.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

static FAILED: AtomicUsize = AtomicUsize::new(0);

fn check(label: &str, ok: bool) {
    println!("{label}: {}", if ok { "yes" } else { "no" });
    if !ok {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
}

/// The current phase and its deadline, polled by the watchdog thread.
static PHASE: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

fn phase(name: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, deadline));
}

fn start_watchdog() {
    let spawned = thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            thread::sleep(Duration::from_millis(100));
            let current = *PHASE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, deadline)) = current {
                if Instant::now() > deadline {
                    println!("FATAL watchdog: {name} did not finish");
                    std::process::exit(98);
                }
            }
        });
    if spawned.is_err() {
        println!("FATAL cannot start the watchdog thread");
        std::process::exit(99);
    }
}

fn spawn_join_results() {
    phase("spawn and join");
    let handles: Vec<_> = (0..8u64)
        .map(|i| thread::spawn(move || (i * 1000..(i + 1) * 1000).sum::<u64>()))
        .collect();
    let results: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let total: u64 = results.iter().sum();
    println!("join results total: {total}");
    check("join results exact", total == (0..8000u64).sum::<u64>());

    let named = thread::Builder::new()
        .name("skiff-worker".into())
        .stack_size(512 * 1024)
        .spawn(|| {
            // Use a good part of the requested stack.
            let buf = [7u8; 256 * 1024];
            let sum: u64 = std::hint::black_box(&buf)
                .iter()
                .map(|&b| u64::from(b))
                .sum();
            (thread::current().name().map(str::to_owned), sum)
        })
        .map(|h| h.join().unwrap());
    match named {
        Ok((name, sum)) => {
            println!("named thread: {}", name.unwrap_or_default());
            check("custom stack usable", sum == 7 * 256 * 1024);
        }
        Err(err) => println!("named thread failed: {:?}", err.kind()),
    }
    check(
        "main thread is called main",
        thread::current().name() == Some("main"),
    );
    let ids: Vec<thread::ThreadId> = (0..4)
        .map(|_| thread::spawn(|| thread::current().id()))
        .map(|h| h.join().unwrap())
        .collect();
    let distinct = (0..ids.len()).all(|i| (0..i).all(|j| ids[i] != ids[j]));
    check(
        "thread ids distinct",
        distinct && !ids.contains(&thread::current().id()),
    );
}

fn arc_mutex() {
    phase("Arc<Mutex>");
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for i in 0..10_000 {
                    *counter.lock().unwrap() += 1;
                    if i % 1000 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = *counter.lock().unwrap();
    println!("mutex counter: {total}");
    check("mutex counter exact", total == 80_000);
    check("Arc back to one owner", Arc::strong_count(&counter) == 1);
}

struct Queue {
    items: Mutex<VecDeque<Option<u64>>>,
    not_empty: Condvar,
    not_full: Condvar,
}

const QUEUE_CAP: usize = 4;

impl Queue {
    fn put(&self, item: Option<u64>) {
        let mut items = self.items.lock().unwrap();
        while items.len() == QUEUE_CAP {
            items = self.not_full.wait(items).unwrap();
        }
        items.push_back(item);
        self.not_empty.notify_one();
    }

    fn take(&self) -> Option<u64> {
        let mut items = self
            .not_empty
            .wait_while(self.items.lock().unwrap(), |items| items.is_empty())
            .unwrap();
        let item = items.pop_front().expect("not empty");
        self.not_full.notify_one();
        item
    }
}

fn condvar_queue() {
    phase("Condvar queue");
    let queue = Arc::new(Queue {
        items: Mutex::new(VecDeque::new()),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let (mut sum, mut count) = (0u64, 0u64);
                while let Some(item) = queue.take() {
                    sum += item;
                    count += 1;
                }
                (sum, count)
            })
        })
        .collect();
    let producers: Vec<_> = (1..=2u64)
        .map(|p| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for i in 1..=3000u64 {
                    queue.put(Some(p * 1_000_000 + i));
                }
            })
        })
        .collect();
    for h in producers {
        h.join().unwrap();
    }
    for _ in 0..2 {
        queue.put(None);
    }
    let (sum, count) = consumers
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |(s, c), (s2, c2)| (s + s2, c + c2));
    let expected: u64 = (1..=2u64)
        .map(|p| (1..=3000u64).map(|i| p * 1_000_000 + i).sum::<u64>())
        .sum();
    println!("condvar queue: {count} items, checksum {sum}");
    check(
        "condvar queue checksum exact",
        sum == expected && count == 6000,
    );

    let pair = (Mutex::new(false), Condvar::new());
    let guard = pair.0.lock().unwrap();
    let (_guard, timeout) = pair
        .1
        .wait_timeout(guard, Duration::from_millis(20))
        .unwrap();
    check("unsignalled wait_timeout times out", timeout.timed_out());
}

fn rwlock() {
    phase("RwLock");
    let data = Arc::new(RwLock::new((0u64, 0u64)));
    let torn = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..2 {
        let data = Arc::clone(&data);
        handles.push(thread::spawn(move || {
            for i in 0..2000 {
                let mut pair = data.write().unwrap();
                pair.0 += 1;
                if i % 256 == 0 {
                    thread::yield_now();
                }
                pair.1 += 1;
            }
        }));
    }
    for _ in 0..4 {
        let data = Arc::clone(&data);
        let torn = Arc::clone(&torn);
        handles.push(thread::spawn(move || {
            for _ in 0..4000 {
                let pair = data.read().unwrap();
                if pair.0 != pair.1 {
                    torn.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let pair = *data.read().unwrap();
    println!("rwlock writes: {}", pair.0);
    check(
        "rwlock readers never saw a torn update",
        torn.load(Ordering::Relaxed) == 0 && pair == (4000, 4000),
    );
    let reader = data.read().unwrap();
    let other = {
        let data = Arc::clone(&data);
        thread::spawn(move || (data.try_read().is_ok(), data.try_write().is_ok()))
            .join()
            .unwrap()
    };
    drop(reader);
    check(
        "second reader allowed, writer refused while read-held",
        other == (true, false),
    );
}

fn barrier() {
    phase("Barrier");
    const THREADS: usize = 6;
    const ROUNDS: usize = 100;
    let barrier = Arc::new(Barrier::new(THREADS));
    let slots = Arc::new(
        (0..THREADS)
            .map(|_| AtomicUsize::new(0))
            .collect::<Vec<_>>(),
    );
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let barrier = Arc::clone(&barrier);
            let slots = Arc::clone(&slots);
            thread::spawn(move || {
                let (mut leaders, mut bad) = (0, 0);
                for round in 1..=ROUNDS {
                    slots[id].store(round * (id + 1), Ordering::SeqCst);
                    if barrier.wait().is_leader() {
                        leaders += 1;
                    }
                    let sum: usize = slots.iter().map(|s| s.load(Ordering::SeqCst)).sum();
                    if sum != round * THREADS * (THREADS + 1) / 2 {
                        bad += 1;
                    }
                    barrier.wait();
                }
                (leaders, bad)
            })
        })
        .collect();
    let (leaders, bad) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |(l, b), (l2, b2)| (l + l2, b + b2));
    println!("barrier leaders: {leaders}");
    check("one leader per round", leaders == ROUNDS);
    check("every thread saw every slot", bad == 0);
}

fn channels() {
    phase("mpsc channels");
    let (tx, rx) = mpsc::channel::<u64>();
    for p in 0..4u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 1..=1000u64 {
                tx.send(p * 10_000 + i).unwrap();
            }
        });
    }
    drop(tx);
    let (mut sum, mut count) = (0u64, 0u64);
    for value in rx {
        sum += value;
        count += 1;
    }
    let expected: u64 = (0..4u64)
        .map(|p| (1..=1000u64).map(|i| p * 10_000 + i).sum::<u64>())
        .sum();
    println!("channel: {count} messages, sum {sum}");
    check("channel sum exact", sum == expected && count == 4000);

    let (tx, rx) = mpsc::sync_channel::<u32>(2);
    let producer = thread::spawn(move || {
        for i in 0..500u32 {
            tx.send(i).unwrap();
        }
    });
    let received: Vec<u32> = rx.iter().collect();
    producer.join().unwrap();
    check(
        "sync_channel delivered in order",
        received == (0..500).collect::<Vec<_>>(),
    );

    let (_tx, rx) = mpsc::channel::<u32>();
    check(
        "recv_timeout with nothing sent times out",
        rx.recv_timeout(Duration::from_millis(20)) == Err(mpsc::RecvTimeoutError::Timeout),
    );
}

fn park_unpark() {
    phase("park and unpark");
    let flag = Arc::new(AtomicBool::new(false));
    let parked = {
        let flag = Arc::clone(&flag);
        thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                thread::park();
            }
            true
        })
    };
    thread::sleep(Duration::from_millis(10));
    flag.store(true, Ordering::SeqCst);
    parked.thread().unpark();
    check("parked thread woken by unpark", parked.join().unwrap());

    let start = Instant::now();
    thread::park_timeout(Duration::from_millis(20));
    // Spurious returns are allowed, so this only bounds it from above.
    check(
        "park_timeout returns",
        start.elapsed() < Duration::from_secs(10),
    );
}

thread_local! {
    static LOCAL: Cell<u64> = const { Cell::new(7) };
}

fn thread_locals_and_once() {
    phase("thread_local and OnceLock");
    LOCAL.with(|l| l.set(12345));
    let handles: Vec<_> = (1..=8u64)
        .map(|i| {
            thread::spawn(move || {
                let fresh = LOCAL.with(Cell::get) == 7;
                LOCAL.with(|l| l.set(i * 100));
                thread::yield_now();
                (fresh, LOCAL.with(Cell::get))
            })
        })
        .collect();
    let (fresh, sum) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((true, 0), |(f, s), (f2, v)| (f && f2, s + v));
    println!("thread_local sum: {sum}");
    check("thread_local starts fresh in every thread", fresh);
    check("thread_local values distinct per thread", sum == 3600);
    check(
        "main thread's thread_local untouched",
        LOCAL.with(Cell::get) == 12345,
    );

    static ONCE: OnceLock<u32> = OnceLock::new();
    static INIT_RUNS: AtomicUsize = AtomicUsize::new(0);
    let handles: Vec<_> = (0..8u32)
        .map(|i| {
            thread::spawn(move || {
                *ONCE.get_or_init(|| {
                    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                    1000 + i
                })
            })
        })
        .collect();
    let values: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    check(
        "OnceLock initialised once",
        INIT_RUNS.load(Ordering::SeqCst) == 1,
    );
    check(
        "every thread saw the same value",
        values.iter().all(|&v| v == values[0]),
    );
}

fn scoped_and_sleep() {
    phase("thread::scope and sleep");
    let data: Vec<u64> = (1..=10_000).collect();
    let mut partial = [0u64; 4];
    thread::scope(|s| {
        for (chunk, out) in data.chunks(2500).zip(partial.iter_mut()) {
            s.spawn(move || *out = chunk.iter().sum());
        }
    });
    let total: u64 = partial.iter().sum();
    println!("scoped sum: {total}");
    check("scoped threads borrowed and summed", total == 50_005_000);

    let before = Instant::now();
    thread::sleep(Duration::from_millis(20));
    check(
        "sleep(20ms) took at least 20ms",
        before.elapsed() >= Duration::from_millis(20),
    );
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(|| {
                let before = Instant::now();
                thread::sleep(Duration::from_millis(30));
                before.elapsed() >= Duration::from_millis(30)
            })
        })
        .collect();
    check(
        "sleep(30ms) in four threads at once",
        sleepers.into_iter().all(|h| h.join().unwrap()),
    );

    match thread::available_parallelism() {
        Ok(n) => check("available_parallelism at least 1", n.get() >= 1),
        Err(err) => println!("available_parallelism failed: {:?}", err.kind()),
    }
}

fn main() {
    start_watchdog();
    spawn_join_results();
    arc_mutex();
    condvar_queue();
    rwlock();
    barrier();
    channels();
    park_unpark();
    thread_locals_and_once();
    scoped_and_sleep();
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let failed = FAILED.load(Ordering::SeqCst);
    if failed == 0 {
        println!("rust threads: done");
    } else {
        println!("rust threads: {failed} failed checks");
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
