// skiff-go-probe: the Go runtime on Skiff, for the differential tests.
//
// Go brings its own runtime: threads made with clone, futexes, a signal handler on an
// alternate stack for every thread, SIGURG-based asynchronous preemption, timers, and
// an epoll-based poller for pipes. This program exercises each of them: goroutines,
// unbuffered and buffered channels, select with time.After, time.Sleep, time.Ticker,
// sync.WaitGroup and sync.Mutex, an os.Pipe read through the poller (with a read
// deadline), runtime.GC, and a CPU-bound loop without function calls that can only be
// interrupted by asynchronous preemption while runtime.GOMAXPROCS(1) leaves one P.
//
// Every line is fixed (no timings, addresses or counts that depend on scheduling).
// A hang prints "FATAL watchdog: <phase> did not finish" and exits 98; any failed
// check makes the exit status 1.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var failed int

func check(label string, ok bool) {
	answer := "yes"
	if !ok {
		answer = "no"
		failed++
	}
	fmt.Printf("%s: %s\n", label, answer)
}

var watchdog *time.Timer

// phase (re)arms the watchdog for the next step.
func phase(name string) {
	if watchdog != nil {
		watchdog.Stop()
	}
	watchdog = time.AfterFunc(20*time.Second, func() {
		fmt.Printf("FATAL watchdog: %s did not finish\n", name)
		os.Exit(98)
	})
}

func argsAndEnv() {
	fmt.Printf("argc: %d\n", len(os.Args))
	for i, arg := range os.Args {
		fmt.Printf("arg[%d]: [%s]\n", i, arg)
	}
	for _, name := range []string{"SKIFF_GO", "SKIFF_UNSET"} {
		if value, ok := os.LookupEnv(name); ok {
			fmt.Printf("env %s=[%s]\n", name, value)
		} else {
			fmt.Printf("env %s is unset\n", name)
		}
	}
	check("GOMAXPROCS at least 1", runtime.GOMAXPROCS(0) >= 1)
	check("NumCPU at least 1", runtime.NumCPU() >= 1)
}

func goroutinesAndChannels() {
	phase("goroutines and channels")
	// Many goroutines, one unbuffered channel.
	results := make(chan int)
	for i := 1; i <= 1000; i++ {
		go func(n int) { results <- n }(i)
	}
	sum := 0
	for i := 0; i < 1000; i++ {
		sum += <-results
	}
	fmt.Printf("1000 goroutines sent a total of %d\n", sum)
	check("unbuffered channel sum exact", sum == 500500)

	// Unbuffered ping-pong.
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	v := 0
	for i := 0; i < 1000; i++ {
		ping <- v
		v = <-pong + 1
	}
	close(ping)
	_, open := <-pong
	check("ping-pong 1000 round trips", v == 2000 && !open)

	// Buffered channel with several producers.
	buffered := make(chan int, 16)
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 1; i <= 500; i++ {
				buffered <- p*10000 + i
			}
		}(p)
	}
	go func() { wg.Wait(); close(buffered) }()
	total, count := 0, 0
	for v := range buffered {
		total += v
		count++
	}
	fmt.Printf("buffered channel: %d values, sum %d\n", count, total)
	check("buffered channel sum exact", count == 2000 && total == 4*125250+10000*500*6)
}

func mutexAndWaitGroup() {
	phase("sync.Mutex and WaitGroup")
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				if i%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("mutex counter: %d\n", counter)
	check("mutex counter exact", counter == 16000)

	var atomicCounter int64
	var wg2 sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := 0; i < 1000; i++ {
				atomic.AddInt64(&atomicCounter, 1)
			}
		}()
	}
	wg2.Wait()
	check("atomic counter exact", atomic.LoadInt64(&atomicCounter) == 8000)
}

func timers() {
	phase("timers")
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	check("time.Sleep(20ms) took at least 20ms", time.Since(start) >= 20*time.Millisecond)

	never := make(chan int)
	select {
	case <-never:
		check("select chose time.After", false)
	case <-time.After(30 * time.Millisecond):
		check("select chose time.After", true)
	}
	ready := make(chan int, 1)
	ready <- 7
	select {
	case v := <-ready:
		check("select chose the ready channel", v == 7)
	case <-time.After(10 * time.Second):
		check("select chose the ready channel", false)
	}

	ticker := time.NewTicker(10 * time.Millisecond)
	start = time.Now()
	ticks := 0
	for ticks < 5 {
		<-ticker.C
		ticks++
	}
	ticker.Stop()
	check("ticker ticked 5 times, 10ms apart", ticks == 5 && time.Since(start) >= 40*time.Millisecond)

	// Many sleeping goroutines at once.
	var wg sync.WaitGroup
	var woke int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i%5+1) * time.Millisecond)
			atomic.AddInt32(&woke, 1)
		}(i)
	}
	wg.Wait()
	check("50 sleeping goroutines all woke", atomic.LoadInt32(&woke) == 50)

	fired := make(chan bool, 1)
	stopped := time.AfterFunc(time.Hour, func() { fired <- true })
	check("stopping a pending timer succeeds", stopped.Stop())
	time.AfterFunc(5*time.Millisecond, func() { fired <- true })
	check("AfterFunc fired", <-fired)
}

func pipes() {
	phase("os.Pipe through the poller")
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Printf("os.Pipe failed: %v\n", err)
		failed++
		return
	}
	const size = 256 * 1024
	go func() {
		chunk := make([]byte, 4096)
		for sent := 0; sent < size; sent += len(chunk) {
			for i := range chunk {
				chunk[i] = byte((sent + i) * 7)
			}
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		w.Close()
	}()
	data, err := io.ReadAll(r)
	ok := err == nil && len(data) == size
	for i := 0; ok && i < len(data); i++ {
		if data[i] != byte(i*7) {
			ok = false
		}
	}
	fmt.Printf("pipe: read %d bytes\n", len(data))
	check("pipe data intact", ok)
	r.Close()

	r, w, err = os.Pipe()
	if err != nil {
		fmt.Printf("os.Pipe failed: %v\n", err)
		failed++
		return
	}
	r.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	buf := make([]byte, 1)
	_, err = r.Read(buf)
	check("read deadline on an empty pipe expires", errors.Is(err, os.ErrDeadlineExceeded))
	go func() {
		time.Sleep(10 * time.Millisecond)
		w.Write([]byte{'x'})
	}()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := r.Read(buf)
	check("blocked pipe read woken by a write", n == 1 && err == nil && buf[0] == 'x')
	r.Close()
	w.Close()
}

func garbageCollection() {
	phase("garbage collection")
	var keep [][]byte
	for i := 0; i < 2000; i++ {
		b := make([]byte, 8192)
		b[0] = byte(i)
		if i%10 == 0 {
			keep = append(keep, b)
		}
	}
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	ok := len(keep) == 200
	for i, b := range keep {
		if b[0] != byte(i*10) {
			ok = false
		}
	}
	check("runtime.GC completed and kept live data", ok && stats.NumGC >= 1)
}

var spinResult uint64

// spin is a CPU-bound loop without function calls, so it has no cooperative
// preemption points: only an asynchronous preemption (SIGURG from sysmon) can take the
// only P away from it.
//
//go:noinline
func spin(iterations uint64) uint64 {
	x := uint64(1)
	for i := uint64(0); i < iterations; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

func preemption() {
	phase("asynchronous preemption")
	previous := runtime.GOMAXPROCS(1)
	var otherRan int32
	spinnerDone := make(chan bool)
	go func() {
		spinResult = spin(120_000_000)
		// Did the other goroutine get the P while this loop held it?
		spinnerDone <- atomic.LoadInt32(&otherRan) == 1
	}()
	// Sleeping hands the P to the spinner; waking up needs it to be preempted.
	time.Sleep(5 * time.Millisecond)
	otherDone := make(chan bool)
	go func() {
		atomic.StoreInt32(&otherRan, 1)
		otherDone <- true
	}()
	<-otherDone
	ranDuringSpin := <-spinnerDone
	runtime.GOMAXPROCS(previous)
	fmt.Printf("spin result: %x\n", spinResult)
	check("a goroutine ran while a loop without calls held the only P", ranDuringSpin)
}

func main() {
	argsAndEnv()
	goroutinesAndChannels()
	mutexAndWaitGroup()
	timers()
	pipes()
	garbageCollection()
	preemption()
	watchdog.Stop()
	if failed != 0 {
		fmt.Printf("go: %d failed checks\n", failed)
		os.Exit(1)
	}
	fmt.Println("go: done")
}
