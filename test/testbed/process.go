package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// Process is a child process the test bed or a test started: in its own process
// group, killed with the test binary (Pdeathsig) so a crashed test never leaves it
// running, its output in a log file.
type Process struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// process is one component the test bed started.
type process struct {
	name string
	*Process
}

// startProcess runs bin with args, sending its output to dir/<name>.log.
func startProcess(dir, name, bin string, args ...string) (*process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s binary %q: %w (run hack/build-testbins.sh)", name, bin, err)
	}
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p, err := launch(logFile, bin, args)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &process{name: name, Process: p}, nil
}

// StartProcess runs bin with args, appending its output to the file at logPath (a
// process started again after a kill keeps one log).
func StartProcess(logPath, bin string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return launch(logFile, bin, args)
}

// launch starts bin with its output to logFile, which it closes when the process ends.
func launch(logFile *os.File, bin string, args []string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	p := &Process{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed once the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop asks the process group to terminate, and kills it after a grace period.
func (p *process) stop() {
	if ended, _ := p.exited(); !ended {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// logTail returns the last bytes of the process's log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

var errNotBuilt = errors.New("not built")

var shardIdentityLine = regexp.MustCompile(`"taking part in the shards","identity":"([^"]+)"`)

// ShardIdentity is the shard identity a manager started with --shards logged (its
// "taking part in the shards" line) in the log at path; empty until it has.
func ShardIdentity(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if m := shardIdentityLine.FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	return ""
}
