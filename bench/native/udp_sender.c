/*
 * bench-udp-sender: paced syslog datagrams with sendmmsg(2), one JSON object on stdout.
 *
 *   bench-udp-sender --host HOST --port N --rate R [--size 100] [--duration 10] [--batch 32]
 *
 * Why compiled: the Python sender took 0.5-0.9 of a core for 15,000-75,000 datagrams/s on two
 * cores, so the sink and its sender fought for the same machine and the sender's ceiling was
 * published as the sink's. One sendmmsg of 32 datagrams costs one system call, not 32
 * interpreter round trips.
 *
 * Pacing: every wake-up sends the datagrams due by now (at most --batch per call, as many calls
 * as it takes to catch up, the clock read before each), then sleeps until the next --batch are
 * due, on an absolute CLOCK_MONOTONIC deadline, so a late wake-up is made up for. It never sends
 * more than rate x elapsed, and stops at --duration even when behind: rate_sent then says how far
 * short it fell, and max_behind how many datagrams it was late by at worst. The window (t0_ns, t1_ns) is on CLOCK_MONOTONIC, the clock
 * the bench's CPU sampler stamps its cgroup samples with. cpu_s is this process's own user +
 * system time (getrusage), the system calls' kernel work included.
 *
 * The datagram is the Python sender's (bench/loadgen/udp.py syslog_datagram): an RFC 5424 head
 * padded with 'x' to --size bytes, so both sinks parse the same message either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define MAX_SIZE 65507 /* the largest UDP payload over IPv4 */
#define NS 1000000000LL

static const char HEAD[] = "<14>1 2026-01-01T00:00:00.000000Z loadgen bench - - - ";

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static double cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void sleep_until(int64_t deadline) {
    struct timespec ts = {.tv_sec = deadline / NS, .tv_nsec = deadline % NS};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int usage(const char *why) {
    fprintf(stderr, "error: %s (usage: bench-udp-sender --host HOST --port N --rate R "
                    "[--size BYTES] [--duration S] [--batch N])\n", why);
    return 2;
}

/* The datagrams due at ns after the start: floor(rate x elapsed), exact in integers for any
   rate and duration the bench asks for (rate < 2^31, elapsed < 2^63 / rate ns). */
static int64_t due_at(int64_t elapsed_ns, int64_t rate) {
    return (int64_t)(((__int128)elapsed_ns * rate) / NS);
}

/* The first time at which `count` datagrams are due. */
static int64_t time_of(int64_t count, int64_t rate) {
    return (int64_t)(((__int128)count * NS + rate - 1) / rate);
}

int main(int argc, char **argv) {
    const char *host = NULL, *port = NULL;
    long size = 100, batch = 32;
    double rate_f = 0, duration = 10;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc)
            return usage("every option takes a value");
        const char *value = argv[++i];
        char *end = NULL;
        if (!strcmp(flag, "--host"))
            host = value;
        else if (!strcmp(flag, "--port"))
            port = value;
        else if (!strcmp(flag, "--size"))
            size = strtol(value, &end, 10);
        else if (!strcmp(flag, "--batch"))
            batch = strtol(value, &end, 10);
        else if (!strcmp(flag, "--rate"))
            rate_f = strtod(value, &end);
        else if (!strcmp(flag, "--duration"))
            duration = strtod(value, &end);
        else
            return usage("unknown option");
        if (end != NULL && *end != '\0')
            return usage("a number was expected");
    }
    if (host == NULL || port == NULL)
        return usage("--host and --port are required");
    if (size < (long)sizeof HEAD || size > MAX_SIZE)
        return usage("--size must be 55 to 65507 bytes");
    if (batch < 1 || batch > MAX_BATCH)
        return usage("--batch must be 1 to 1024");
    if (!(rate_f >= 1 && rate_f < 2e9))
        return usage("--rate must be at least 1 and under 2e9 datagrams/s");
    if (!(duration > 0 && duration < 86400))
        return usage("--duration must be more than 0 and under 86400 seconds");
    int64_t rate = (int64_t)rate_f;

    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "error: %s:%s: %s\n", host, port, gai_strerror(rc));
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { /* connected: no address per send */
        fprintf(stderr, "error: socket/connect %s:%s: %s\n", host, port, strerror(errno));
        return 1;
    }
    freeaddrinfo(ai);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us, not the default 50: wake-ups near their deadline */

    static char payload[MAX_SIZE];
    memcpy(payload, HEAD, sizeof HEAD - 1);
    memset(payload + sizeof HEAD - 1, 'x', (size_t)size - (sizeof HEAD - 1));
    static struct iovec iov[MAX_BATCH];
    static struct mmsghdr msgs[MAX_BATCH];
    for (long i = 0; i < batch; i++) {
        iov[i] = (struct iovec){.iov_base = payload, .iov_len = (size_t)size};
        msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
    }

    int64_t sent = 0, errors = 0, calls = 0, wakeups = 0, max_behind = 0;
    int last_errno = 0;
    double user0, sys0, user1, sys1;
    cpu_seconds(&user0, &sys0);
    const int64_t start = now_ns(), end = start + (int64_t)(duration * NS);
    for (;;) {
        int64_t now = now_ns();
        if (now >= end)
            break;
        int64_t due = due_at(now - start, rate) - sent;
        if (due > max_behind)
            max_behind = due;
        if (due > 0) { /* one call, then the clock again: a sender that cannot keep up stops on time */
            int n = sendmmsg(fd, msgs, (unsigned)(due < batch ? due : batch), 0);
            calls++;
            if (n < 0 && errno != EINTR) {
                /* ECONNREFUSED (an ICMP echo of an earlier datagram), ENOBUFS: the datagram at the
                   head is not sent; counted, and given up on so the schedule stays the schedule. */
                last_errno = errno;
                errors++;
                sent++;
            } else if (n > 0) {
                sent += n;
            }
            continue;
        }
        wakeups++;
        int64_t next = start + time_of(sent + batch, rate);
        sleep_until(next < end ? next : end);
    }
    const int64_t stop = now_ns();
    double cpu = cpu_seconds(&user1, &sys1) - (user0 + sys0);
    double elapsed = (double)(stop - start) / NS;
    int64_t delivered = sent - errors;
    printf("{\"generator\": \"udp-sendmmsg\", \"target\": \"%s:%s\", \"size\": %ld, \"rate_asked\": %lld, "
           "\"sent\": %lld, \"send_errors\": %lld, \"last_error\": \"%s\", \"elapsed_s\": %.6f, "
           "\"rate_sent\": %.1f, \"loadgen_cpu_s\": %.4f, \"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, "
           "\"procs\": 1, \"batch\": %ld, \"calls\": %lld, \"wakeups\": %lld, \"max_behind\": %lld, "
           "\"t0_ns\": %lld, \"t1_ns\": %lld}\n",
           host, port, size, (long long)rate, (long long)delivered, (long long)errors,
           last_errno ? strerror(last_errno) : "", elapsed, elapsed > 0 ? delivered / elapsed : 0.0, cpu,
           user1 - user0, sys1 - sys0, batch, (long long)calls, (long long)wakeups, (long long)max_behind,
           (long long)start, (long long)stop);
    close(fd);
    return 0;
}
