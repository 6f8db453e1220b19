// skiff-go-net: Go's network stack on Skiff, for the differential tests.
//
// Go drives every socket through its own poller: non-blocking sockets, accept4,
// connect with EINPROGRESS and SO_ERROR, epoll in edge-triggered mode, and timers for
// deadlines. This program runs a net/http server and client in one process over
// 127.0.0.1 (small and large responses, a request body echoed back, a 404, keep-alive
// reuse, concurrent requests, graceful shutdown), plus a raw TCP echo with read
// deadlines and a UDP exchange.
//
// Every line is fixed (no ports, timings or counts that depend on scheduling). A hang
// prints "FATAL watchdog: <phase> did not finish" and exits 98; any failed check makes
// the exit status 1.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
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
	watchdog = time.AfterFunc(60*time.Second, func() {
		fmt.Printf("FATAL watchdog: %s did not finish\n", name)
		os.Exit(98)
	})
}

// fatal ends the program for a setup step whose failure voids the rest.
func fatal(label string, err error) {
	fmt.Printf("FATAL %s: %v\n", label, err)
	os.Exit(99)
}

// pattern is a deterministic byte stream whose period does not line up with buffers.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + seed*13 + i/251) % 251)
	}
	return b
}

func digest(b []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(b))[:16]
}

const bigSize = 3<<20 + 12345

func httpServerAndClient() {
	fmt.Println("== net/http")
	phase("net/http")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("listen", err)
	}
	addr := listener.Addr().(*net.TCPAddr)
	check("listening on 127.0.0.1", addr.IP.Equal(net.IPv4(127, 0, 0, 1)))
	check("port is nonzero", addr.Port != 0)

	big := pattern(3, bigSize)
	var mu sync.Mutex
	remotes := map[string]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes[r.RemoteAddr] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Skiff", "yes")
		fmt.Fprintf(w, "hello, %s %s\n", r.Method, r.URL.Path)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read failed", http.StatusBadRequest)
			return
		}
		w.Write(body)
	})
	server := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	base := "http://" + addr.String()
	client := &http.Client{Timeout: 30 * time.Second}

	resp, err := client.Get(base + "/hello")
	if err != nil {
		fatal("GET /hello", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("GET /hello: %d %q\n", resp.StatusCode, body)
	fmt.Printf("  Content-Type: %s\n", resp.Header.Get("Content-Type"))
	fmt.Printf("  Content-Length: %d\n", resp.ContentLength)
	fmt.Printf("  X-Skiff: %s\n", resp.Header.Get("X-Skiff"))

	resp, err = client.Get(base + "/big")
	if err != nil {
		fatal("GET /big", err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("GET /big: %d, %d bytes, read error: %v\n", resp.StatusCode, len(body), err)
	check("the large body is intact", bytes.Equal(body, big))

	upload := pattern(5, 700_000)
	resp, err = client.Post(base+"/echo", "application/octet-stream", bytes.NewReader(upload))
	if err != nil {
		fatal("POST /echo", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("POST /echo: %d, %d bytes, sha256 %s\n", resp.StatusCode, len(body), digest(body))
	check("the echoed body matches", bytes.Equal(body, upload))

	resp, err = client.Get(base + "/echo")
	if err != nil {
		fatal("GET /echo", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("GET /echo: %d %q\n", resp.StatusCode, strings.TrimSpace(string(body)))

	resp, err = client.Get(base + "/missing")
	if err != nil {
		fatal("GET /missing", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Printf("GET /missing: %d\n", resp.StatusCode)

	// Sequential requests on one client reuse its keep-alive connection.
	mu.Lock()
	remotes = map[string]bool{}
	mu.Unlock()
	for i := 0; i < 5; i++ {
		resp, err := client.Get(base + "/hello")
		if err != nil {
			fatal("GET /hello again", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	mu.Lock()
	fmt.Printf("5 sequential requests came over %d connection(s)\n", len(remotes))
	mu.Unlock()

	// Concurrent requests, each on whatever connection the transport picks.
	const parallel = 32
	var wg sync.WaitGroup
	results := make([]bool, parallel)
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			payload := pattern(100+i, 10_000+i*1000)
			resp, err := client.Post(base+"/echo", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			results[i] = err == nil && resp.StatusCode == 200 && bytes.Equal(got, payload)
		}(i)
	}
	wg.Wait()
	good := 0
	for _, ok := range results {
		if ok {
			good++
		}
	}
	fmt.Printf("concurrent POSTs echoed intact: %d of %d\n", good, parallel)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = server.Shutdown(ctx)
	fmt.Printf("Shutdown: %v\n", err)
	fmt.Printf("Serve returned ErrServerClosed: %v\n", errors.Is(<-served, http.ErrServerClosed))
	client.CloseIdleConnections()
	_, err = client.Get(base + "/hello")
	var opErr *net.OpError
	check("a request after shutdown is refused", errors.As(err, &opErr) && opErr.Op == "dial")
}

func rawTCP() {
	fmt.Println("== raw TCP with deadlines")
	phase("raw TCP")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("listen", err)
	}
	defer listener.Close()
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		fatal("dial", err)
	}
	defer conn.Close()
	tcp := conn.(*net.TCPConn)
	check("local address is loopback", conn.LocalAddr().(*net.TCPAddr).IP.IsLoopback())

	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 64)
	start := time.Now()
	_, err = conn.Read(buf)
	check("read with nothing to read hits the deadline", errors.Is(err, os.ErrDeadlineExceeded))
	check("after at least 50 ms", time.Since(start) >= 50*time.Millisecond)

	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	data := pattern(9, 1<<20)
	go func() {
		tcp.Write(data)
		tcp.CloseWrite()
	}()
	back, err := io.ReadAll(conn)
	fmt.Printf("echoed %d bytes, error %v\n", len(back), err)
	check("the echo is intact", bytes.Equal(back, data))
}

func udp() {
	fmt.Println("== UDP")
	phase("UDP")
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fatal("listen udp", err)
	}
	defer a.Close()
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fatal("listen udp", err)
	}
	defer b.Close()
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("datagram %d", i)
		if _, err := a.WriteTo([]byte(msg), b.LocalAddr()); err != nil {
			fatal("WriteTo", err)
		}
	}
	b.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 100)
	for i := 0; i < 3; i++ {
		n, from, err := b.ReadFrom(buf)
		fmt.Printf("ReadFrom: %q from the sender: %v error %v\n", buf[:n], from.String() == a.LocalAddr().String(), err)
	}
	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err = b.ReadFrom(buf)
	check("ReadFrom with nothing queued hits the deadline", errors.Is(err, os.ErrDeadlineExceeded))
}

func main() {
	httpServerAndClient()
	rawTCP()
	udp()
	watchdog.Stop()
	if failed != 0 {
		fmt.Printf("go net: %d failed checks\n", failed)
		os.Exit(1)
	}
	fmt.Println("go net: done")
}
