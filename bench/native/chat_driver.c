/*
 * bench-chat-driver: the chat fan-out of bench/loadgen/chat.py in C, one epoll loop, one JSON object on stdout.
 *
 *   bench-chat-driver [--chat HOST:PORT] [--redis HOST:PORT] [--clients 10] [--senders 10] [--size 64]
 *                     [--duration 3] [--warmup 0.5] [--rounds 3] [--timeout 60]
 *
 * The same load as the Python driver, to check it: --clients members join the chat room, and --clients - 1
 * subscribers plus --senders publishers connect to Redis; each sender keeps one message in flight, the next
 * leaving once every recipient has the previous one; phases alternate between the rooms (ABBA). A message's
 * text is "m SENDER SEQ SENT_NS xxx..." (--size bytes), so a recipient knows whose it is and when it left,
 * through either framing (a chat line "<guest4> m ...\n", a RESP bulk string "m ...\r\n").
 *
 * Why compiled: the Python driver spends about 40 % of its CPU in user space (measured with os.times over a
 * run at 100 clients: user 3.4 s, system 4.8 s); on two cores what the driver takes, the server has not.
 * Each phase reports this process's own CPU (getrusage) over its window, on CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL
#define BUF 65536
#define MAX_SENDERS 1024
#define SUB 64            /* histogram buckets per power of two, as bench/stats.py */
#define BUCKETS 4096
#define GREETING_LINES 4  /* the chat room's greeting: protocols/chat.py */
#define PRESENCE_SETTLE (6.5 * NS) /* the room's announce grace (5 s) and a presence tick, as chat.py */
#define QUIET (NS / 10 * 3)

enum role { MEMBER, SUB_, PUB };
struct conn {
    int fd, target, role, sender; /* target 0 chat, 1 redis; sender -1 when it sends nothing */
    size_t len;
    long lines;
    char buf[BUF];
};

static struct conn *conns;
static int nconns, epfd;
static int senders, clients, size;
static int send_fd[2][MAX_SENDERS];
static long long seq[MAX_SENDERS], sent_at[MAX_SENDERS], remaining[MAX_SENDERS];
static int waiting[MAX_SENDERS];
static long long counts[BUCKETS], total, maximum, undelivered, phase_messages;
static long long t0, t1, last_read;
static int sending, target_now;
static double timeout_s = 60;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * NS + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int bucket_of(long long v) {
    if (v < 2 * SUB)
        return v < 0 ? 0 : (int)v;
    int exponent = 63 - __builtin_clzll((unsigned long long)v) - 6;
    int index = exponent * SUB + (int)(v >> exponent);
    return index < BUCKETS ? index : BUCKETS - 1;
}

static double bucket_value(int index) {
    if (index < 2 * SUB)
        return index;
    int exponent = index / SUB - 1;
    long long low = (long long)(index - exponent * SUB) << exponent;
    return (double)low + ((1LL << exponent) - 1) / 2.0;
}

/* The nearest-rank p-th percentile in ms, as bench/stats.py: the bucket's middle, clamped to the largest
   value seen; "null" when nothing was counted. */
static const char *percentile_ms(long long p, char *out, size_t n) {
    if (total == 0)
        return "null";
    long long rank = (p * total + 99) / 100, seen = 0;
    double value = (double)maximum;
    for (int i = 0; i < BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank) {
            value = bucket_value(i) < maximum ? bucket_value(i) : (double)maximum;
            break;
        }
    }
    snprintf(out, n, "%.4f", value / 1000);
    return out;
}

static void die(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int usage(const char *why) {
    fprintf(stderr, "error: %s (usage: bench-chat-driver [--chat HOST:PORT] [--redis HOST:PORT] [--clients N] "
                    "[--senders N] [--size BYTES] [--duration S] [--warmup S] [--rounds N] [--timeout S])\n", why);
    return 2;
}

static struct addrinfo *resolve(char *hostport) {
    char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(hostport, colon + 1, &hints, &ai);
    *colon = ':';
    return rc == 0 ? ai : NULL;
}

static struct conn *connect_one(struct addrinfo *ai, int target, int role, int sender) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = &conns[nconns];
    *c = (struct conn){.fd = fd, .target = target, .role = role, .sender = sender};
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)nconns++};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
    return c;
}

static void send_all(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, data, n, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("send");
        data += w;
        n -= (size_t)w;
    }
}

static void send_message(int sender) {
    char text[8192], wire[8400];
    long long now = now_ns();
    seq[sender]++;
    int head = snprintf(text, sizeof text, "m %d %lld %lld ", sender, seq[sender], now);
    int n = head < size ? size : head;
    memset(text + head, 'x', (size_t)(n - head));
    int w = target_now == 0 ? snprintf(wire, sizeof wire, "%.*s\n", n, text)
                            : snprintf(wire, sizeof wire, "*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$%d\r\n%.*s\r\n", n,
                                       n, text);
    sent_at[sender] = now;
    remaining[sender] = clients - 1; /* every other member, or every subscriber */
    waiting[sender] = 1;
    send_all(send_fd[target_now][sender], wire, (size_t)w);
}

/* One message seen at a recipient: count it, and when all have it, send that sender's next. */
static void delivered(int sender, long long s, long long sent, long long now) {
    if (sender < 0 || sender >= senders)
        return;
    if (now >= t0 && now < t1) {
        long long us = (now - sent) / 1000;
        counts[bucket_of(us)]++;
        total++;
        if (us > maximum)
            maximum = us;
    }
    if (s != seq[sender] || !waiting[sender])
        return; /* a message given up on, arriving after all */
    if (--remaining[sender] == 0) {
        waiting[sender] = 0;
        phase_messages++;
        if (sending)
            send_message(sender);
    }
}

static void scan_line(const char *p, const char *end, long long now) {
    for (; p + 2 < end; p++) { /* "m " then three numbers, each followed by a space */
        if (p[0] != 'm' || p[1] != ' ' || p[2] < '0' || p[2] > '9')
            continue;
        long long v[3];
        const char *q = p + 2;
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            v[i] = 0;
            if (q >= end || *q < '0' || *q > '9')
                ok = 0;
            while (ok && q < end && *q >= '0' && *q <= '9')
                v[i] = v[i] * 10 + (*q++ - '0');
            if (ok && (q >= end || *q++ != ' '))
                ok = 0;
        }
        if (ok) {
            delivered((int)v[0], v[1], v[2], now);
            return;
        }
    }
}

static void handle(struct conn *c, long long now) {
    ssize_t n = recv(c->fd, c->buf + c->len, BUF - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fprintf(stderr, "error: %s closed a connection\n", c->target ? "redis" : "chat");
        exit(1);
    }
    last_read = now;
    c->len += (size_t)n;
    if (c->role == PUB) { /* Redis's ":<receivers>" replies to PUBLISH */
        c->len = 0;
        return;
    }
    char *start = c->buf, *end = c->buf + c->len, *nl;
    while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
        c->lines++;
        if (c->role == SUB_ && memmem(start, (size_t)(nl - start), "subscribe", 9) == NULL)
            c->lines--; /* a subscriber's setup counts its confirmations, not every RESP line */
        scan_line(start, nl, now);
        start = nl + 1;
    }
    c->len = (size_t)(end - start);
    if (c->len == BUF)
        c->len = 0; /* a line longer than the buffer: nobody's message */
    memmove(c->buf, start, c->len);
}

static void poll_once(int ms) {
    struct epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, ms);
    long long now = now_ns(); /* one clock read per batch: see bench/loadgen/upper.py */
    for (int i = 0; i < n; i++)
        handle(&conns[events[i].data.u32], now);
}

static int members_greeted(int from, int to) {
    for (int i = from; i < to; i++)
        if (conns[i].lines < (conns[i].role == MEMBER ? GREETING_LINES : 1))
            return 0;
    return 1;
}

static double setup(struct addrinfo *ai, int target) {
    long long began = now_ns(), deadline = began + (long long)(timeout_s * NS);
    int first = nconns;
    if (target == 0) {
        for (int i = 0; i < clients; i++) {
            struct conn *c = connect_one(ai, 0, MEMBER, i < senders ? i : -1);
            if (i < senders)
                send_fd[0][i] = c->fd;
        }
    } else {
        for (int i = 0; i < clients - 1; i++)
            send_all(connect_one(ai, 1, SUB_, -1)->fd, "SUBSCRIBE room\r\n", 16);
    }
    int last = nconns;
    if (target == 1)
        for (int i = 0; i < senders; i++)
            send_fd[1][i] = connect_one(ai, 1, PUB, i)->fd;
    while (!members_greeted(first, last)) {
        if (now_ns() > deadline) {
            fprintf(stderr, "error: %s setup: not complete after %g s\n", target ? "redis" : "chat", timeout_s);
            exit(1);
        }
        poll_once(50);
    }
    if (target == 0) { /* the room's presence notices: wait them out, as chat.py's setup_chat does */
        long long settled = now_ns() + (long long)PRESENCE_SETTLE;
        while (now_ns() < settled || now_ns() - last_read < QUIET)
            poll_once(50);
    }
    return (double)(now_ns() - began) / NS;
}

static void phase(int target, double warmup, double duration, FILE *out, int first) {
    memset(counts, 0, sizeof counts);
    total = maximum = undelivered = phase_messages = 0;
    target_now = target;
    long long start = now_ns();
    t0 = start + (long long)(warmup * NS);
    t1 = t0 + (long long)(duration * NS);
    sending = 1;
    for (int s = 0; s < senders; s++)
        send_message(s);
    double cpu0 = -1, cpu = 0;
    long long counted_from = -1, messages = 0, end_ns = 0;
    for (;;) {
        poll_once(50);
        long long now = now_ns();
        if (cpu0 < 0 && now >= t0) {
            cpu0 = cpu_s();
            counted_from = phase_messages;
        }
        if (sending && now >= t1) {
            sending = 0;
            cpu = cpu_s() - cpu0;
            end_ns = now;
            messages = phase_messages - counted_from;
        }
        int busy = 0;
        for (int s = 0; s < senders; s++) {
            if (waiting[s] && now - sent_at[s] > (long long)(timeout_s * NS)) {
                undelivered++;
                waiting[s] = 0;
                if (sending)
                    send_message(s);
            }
            busy |= waiting[s];
        }
        if (!sending && !busy)
            break;
    }
    double window = (double)(end_ns - t0) / NS;
    char p50[32], p95[32], p99[32];
    fprintf(out, "%s{\"generator\": \"chat-epoll\", \"target\": \"%s\", \"t0_ns\": %lld, \"t1_ns\": %lld, "
                 "\"deliveries\": %lld, \"messages\": %lld, \"window_s\": %.4f, \"deliveries_per_s\": %.1f, "
                 "\"p50_ms\": %s, \"p95_ms\": %s, \"p99_ms\": %s, \"errors\": %lld, \"loadgen_cpu_s\": %.4f, "
                 "\"busiest_cpu_s\": %.4f, \"procs\": 1}",
            first ? "" : ", ", target ? "redis" : "chat", t0, end_ns, total, messages, window,
            window > 0 ? total / window : 0.0, percentile_ms(50, p50, sizeof p50), percentile_ms(95, p95, sizeof p95),
            percentile_ms(99, p99, sizeof p99), undelivered, cpu, cpu);
}

int main(int argc, char **argv) {
    char *chat = NULL, *redis = NULL;
    double duration = 3, warmup = 0.5;
    long rounds = 3, clients_l = 10, senders_l = 10, size_l = 64;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc)
            return usage("every option takes a value");
        char *value = argv[++i], *end = NULL;
        if (!strcmp(flag, "--chat"))
            chat = value;
        else if (!strcmp(flag, "--redis"))
            redis = value;
        else if (!strcmp(flag, "--clients"))
            clients_l = strtol(value, &end, 10);
        else if (!strcmp(flag, "--senders"))
            senders_l = strtol(value, &end, 10);
        else if (!strcmp(flag, "--size"))
            size_l = strtol(value, &end, 10);
        else if (!strcmp(flag, "--rounds"))
            rounds = strtol(value, &end, 10);
        else if (!strcmp(flag, "--duration"))
            duration = strtod(value, &end);
        else if (!strcmp(flag, "--warmup"))
            warmup = strtod(value, &end);
        else if (!strcmp(flag, "--timeout"))
            timeout_s = strtod(value, &end);
        else
            return usage("unknown option");
        if (end != NULL && *end != '\0')
            return usage("a number was expected");
    }
    if (chat == NULL && redis == NULL)
        return usage("give --chat, --redis or both");
    if (clients_l < 2 || clients_l > 100000 || senders_l < 1 || size_l < 1 || size_l > 4000 || rounds < 1)
        return usage("--clients must be 2 or more, --senders and --rounds 1 or more, --size 1 to 4000");
    if (!(duration > 0) || !(warmup >= 0) || !(timeout_s > 0))
        return usage("--duration and --timeout must be more than 0, --warmup 0 or more");
    clients = (int)clients_l;
    senders = (int)(senders_l < clients_l ? senders_l : clients_l);
    if (senders > MAX_SENDERS)
        return usage("--senders must be at most 1024");
    size = (int)size_l;
    conns = calloc((size_t)(2 * clients + senders), sizeof *conns);
    epfd = epoll_create1(0);
    if (conns == NULL || epfd < 0)
        die("setup");
    struct addrinfo *chat_ai = chat ? resolve(chat) : NULL, *redis_ai = redis ? resolve(redis) : NULL;
    if ((chat && !chat_ai) || (redis && !redis_ai))
        return usage("--chat and --redis take HOST:PORT (a name or address that resolves)");
    double chat_setup = chat_ai ? setup(chat_ai, 0) : 0, redis_setup = redis_ai ? setup(redis_ai, 1) : 0;
    int targets[2], ntargets = 0;
    if (chat_ai)
        targets[ntargets++] = 0;
    if (redis_ai)
        targets[ntargets++] = 1;
    printf("{\"generator\": \"chat-epoll\", \"clients\": %d, \"senders\": %d, \"size\": %d, \"fanout\": %d, "
           "\"procs\": 1, \"setup_s\": {", clients, senders, size, clients - 1);
    if (chat_ai)
        printf("\"chat\": %.3f%s", chat_setup, redis_ai ? ", " : "");
    if (redis_ai)
        printf("\"redis\": %.3f", redis_setup);
    printf("}, \"phases\": [");
    for (long r = 0, first = 1; r < rounds; r++)
        for (int k = 0; k < ntargets; k++, first = 0)
            phase(targets[r % 2 == 0 ? k : ntargets - 1 - k], warmup, duration, stdout, (int)first);
    printf("]}\n");
    return 0;
}
