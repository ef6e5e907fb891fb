package chaos

import (
	"io"
	"net"
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

// replica is one manager process, killed and started again by the runs' faults.
type replica struct {
	name string
	bin  string
	args []string
	log  string

	mu   sync.Mutex
	proc *testbed.Process
	// restarting is set while a kill's restart is pending, so that a second kill
	// meanwhile does nothing; stopped once stop was called: nothing starts it again.
	restarting, stopped bool
	// restarts are the kills' restarts in flight and the watch on the process: stop
	// waits for them.
	restarts sync.WaitGroup
	// exits counts the times it ended on its own and was started again; onExit is told
	// of a restart that failed.
	exits  int
	onExit func(error)
}

func (r *replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked()
}

func (r *replica) startLocked() error {
	p, err := testbed.StartProcess(r.log, r.bin, r.args...)
	if err != nil {
		return err
	}
	r.proc = p
	// A replica that ends on its own (one that could not renew a shard's Lease in time
	// exits, as a Deployment's restartPolicy would restart it) is started again.
	r.restarts.Go(func() {
		<-p.Done()
		time.Sleep(time.Second)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.proc != p || r.restarting || r.stopped {
			return
		}
		r.exits++
		if err := r.startLocked(); err != nil && r.onExit != nil {
			r.onExit(err)
		}
	})
	return nil
}

// kill signals the replica and starts it again after the given time. It says whether
// it did anything (a replica already down waits for its own restart).
func (r *replica) kill(sig syscall.Signal, back time.Duration, onErr func(error)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.restarting || r.stopped || r.proc == nil {
		return false
	}
	p := r.proc
	_ = p.Signal(sig)
	r.restarting = true
	r.restarts.Go(func() {
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second): // a SIGTERM that does not end it
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		time.Sleep(back)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.restarting = false
		if r.stopped {
			return
		}
		if err := r.startLocked(); err != nil && onErr != nil {
			onErr(err)
		}
	})
	return true
}

// up says whether the replica runs and no restart is pending.
func (r *replica) up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.restarting && !r.stopped && r.proc != nil
}

// stop kills the replica and waits for a pending restart to give up.
func (r *replica) stop() {
	r.mu.Lock()
	p := r.proc
	r.proc, r.stopped = nil, true
	r.mu.Unlock()
	if p != nil {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
	}
	r.restarts.Wait()
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
	// refusing counts the faults that have it refuse every connection.
	refusing int
	mu       sync.Mutex
}

// refuse turns refusing on (or off: each on is matched by one off).
func (f *frontend) refuse(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.refusing++
	} else {
		f.refusing--
	}
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
	first, refusing := f.next, f.refusing > 0
	f.next = (f.next + 1) % len(f.backends)
	f.mu.Unlock()
	if refusing {
		return
	}
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
