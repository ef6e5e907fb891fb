package chaos

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tminus-dev/tminus/test/testbed"
)

const (
	// managerNamespace holds the shards' Leases and the webhook certificate's Secret.
	managerNamespace = "tminus-system"
	shardCount       = 4
	leaseDuration    = 4 * time.Second
	renewDeadline    = 3 * time.Second
	retryPeriod      = 500 * time.Millisecond
	// userAgentPrefix starts the user agent of every manager replica: the binary's
	// name, so the audit log tells tminus's writes (and which replica's) apart.
	userAgentPrefix = "tminus-chaos-"
)

// buildManager builds the manager (cmd/) once under each name.
func buildManager(dir string, names ...string) ([]string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	first := filepath.Join(dir, names[0])
	build := exec.Command("go", "build", "-o", first, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	raw, err := os.ReadFile(first)
	if err != nil {
		return nil, err
	}
	paths := []string{first}
	for _, n := range names[1:] {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, raw, 0o755); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// replica is one manager process, killed and started again by the run's faults.
type replica struct {
	name string
	bin  string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// restarting is set while a kill's restart is pending, so that a second kill
	// meanwhile does nothing.
	restarting bool
}

func (r *replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked()
}

func (r *replica) startLocked() error {
	logFile, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	return nil
}

// kill signals the replica and starts it again after the given time. It says whether
// it did anything (a replica already down waits for its own restart).
func (r *replica) kill(sig syscall.Signal, back time.Duration, onErr func(error)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.restarting || r.cmd == nil {
		return false
	}
	_ = r.cmd.Process.Signal(sig)
	done := r.done
	r.restarting = true
	go func() {
		select {
		case <-done:
		case <-time.After(15 * time.Second): // a SIGTERM that does not end it
			r.mu.Lock()
			_ = r.cmd.Process.Kill()
			r.mu.Unlock()
			<-done
		}
		time.Sleep(back)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.restarting = false
		if err := r.startLocked(); err != nil && onErr != nil {
			onErr(err)
		}
	}()
	return true
}

// up says whether the replica runs and no restart is pending.
func (r *replica) up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.restarting && r.cmd != nil
}

func (r *replica) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

// managerArgs are a replica's flags: shards by Lease, the webhooks served on its own
// port with the certificate it makes (shared by both through the Secret).
func managerArgs(kubeconfig string, webhookPort int) []string {
	return []string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--shards", strconv.Itoa(shardCount), "--leader-elect-namespace", managerNamespace,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		// Prometheus and the app are on loopback, which the address guard denies
		// unless listed.
		"--allowed-hosts", "127.0.0.1/32",
		"--namespace", managerNamespace,
		"--webhook-host", "127.0.0.1", "--webhook-port", strconv.Itoa(webhookPort),
		"--webhook-dns-names", "localhost",
	}
}

// frontend stands for the webhook Service: it takes the API server's connections on
// one port and passes each, as it is (TLS end to end), to a replica that accepts it,
// trying the next when one is down, as endpoints that follow readiness do.
type frontend struct {
	l        net.Listener
	backends []string
	next     int
	mu       sync.Mutex
}

func startFrontend(port int, backends []string) (*frontend, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	f := &frontend{l: l, backends: backends}
	go f.serve()
	return f, nil
}

func (f *frontend) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		go f.pass(c)
	}
}

func (f *frontend) pass(c net.Conn) {
	defer func() { _ = c.Close() }()
	f.mu.Lock()
	first := f.next
	f.next = (f.next + 1) % len(f.backends)
	f.mu.Unlock()
	var b net.Conn
	for i := range f.backends {
		var err error
		if b, err = net.DialTimeout("tcp", f.backends[(first+i)%len(f.backends)], time.Second); err == nil {
			break
		}
	}
	if b == nil {
		return
	}
	defer func() { _ = b.Close() }()
	go func() {
		_, _ = io.Copy(b, c)
		if tc, ok := b.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, b)
}

func (f *frontend) close() { _ = f.l.Close() }
