package wasmjob

/*
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// The worker's one answer on stdout: whoever claims it first writes it.
static atomic_int answered;
static atomic_int armed_generation;

struct deadline {
	int generation;
	long long ms;
	int fd;
	char *msg;
	size_t len;
};

static void *deadline_thread(void *arg) {
	struct deadline *d = arg;
	struct timespec ts = { d->ms / 1000, (d->ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0) {}
	int expected = 0;
	if (atomic_load(&armed_generation) == d->generation && atomic_compare_exchange_strong(&answered, &expected, 1)) {
		size_t off = 0;
		while (off < d->len) {
			ssize_t n = write(d->fd, d->msg + off, d->len - off);
			if (n <= 0) break;
			off += (size_t)n;
		}
		_exit(0);
	}
	free(d->msg);
	free(d);
	return NULL;
}

// dsbx_arm starts a thread that, ms from now, writes msg to fd and ends the
// process, unless the answer was claimed or the deadline disarmed first.
static int dsbx_arm(int generation, long long ms, int fd, const char *msg, size_t len) {
	struct deadline *d = malloc(sizeof *d);
	if (!d) return -1;
	d->msg = malloc(len);
	if (!d->msg) { free(d); return -1; }
	memcpy(d->msg, msg, len);
	d->generation = generation; d->ms = ms; d->fd = fd; d->len = len;
	atomic_store(&armed_generation, generation);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, deadline_thread, d);
	pthread_attr_destroy(&attr);
	if (rc != 0) { free(d->msg); free(d); return -1; }
	return 0;
}

static void dsbx_disarm(void) { atomic_store(&armed_generation, 0); }

// dsbx_claim claims the answer for the caller; 0 if the deadline has it.
static int dsbx_claim(void) {
	int expected = 0;
	return atomic_compare_exchange_strong(&answered, &expected, 1);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"time"
)

// The deadline of the guest a worker runs is kept by a thread of its own
// outside the Go runtime: a guest compiled without deadline checks (see
// wasm.ExitAtDeadline) running a tight loop cannot be preempted, so a
// garbage collection waiting to stop the world would also stop a Go timer.
// The thread writes the time limit's outcome, prepared in advance, and
// ends the process.

var (
	genMu sync.Mutex
	gen   C.int
)

// armDeadline makes this process answer outcome on fd and exit after
// timeout, unless disarmed or answered first.
func armDeadline(fd int, timeout time.Duration, outcome []byte) (disarm func(), err error) {
	genMu.Lock()
	gen++
	g := gen
	genMu.Unlock()
	if len(outcome) == 0 {
		return nil, fmt.Errorf("wasm job: empty deadline outcome")
	}
	p := C.CBytes(outcome)
	defer C.free(p)
	if C.dsbx_arm(g, C.longlong(timeout.Milliseconds()), C.int(fd), (*C.char)(p), C.size_t(len(outcome))) != 0 {
		return nil, fmt.Errorf("wasm job: cannot start the deadline thread")
	}
	return func() { C.dsbx_disarm() }, nil
}

// claimAnswer claims the worker's one answer; false means the deadline
// thread is writing it and the process is about to end.
func claimAnswer() bool { return C.dsbx_claim() != 0 }
