// The C pipeline across machines (bench pipeline --framework c --nnodes N): each node's mpiexec
// starts that node's ranks (their MPI_COMM_WORLD is one node), and the nodes become one
// communicator through MPI's own dynamic-process calls. Node 0's rank 0 opens an MPI port
// (MPI_Open_port) and hands its name, over one TCP connection per node at the group's endpoint,
// to each other node's rank 0, in node order; node k connects (MPI_Comm_connect) while the nodes
// before it accept (MPI_Comm_accept), and MPI_Intercomm_merge orders it after them. A rank's
// place is node x ranks per node + its rank on the node. The socket carries the port's name
// only: every byte of the pipeline then moves over MPI.
#define _GNU_SOURCE
#include "cjoin.h"

#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double seconds_left(const struct timespec *deadline) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(deadline->tv_sec - t.tv_sec) + (deadline->tv_nsec - t.tv_nsec) / 1e9;
}

static int wait_fd(int fd, short events, const struct timespec *deadline) {  // 1 ready, 0 not
    double left = seconds_left(deadline);
    struct pollfd p = {fd, events, 0};
    return left > 0 && poll(&p, 1, (int)(left * 1000) + 1) == 1 && (p.revents & events);
}

static struct addrinfo *resolve(const char *endpoint, int passive) {  // "HOST:PORT"
    char host[256];
    const char *colon = strrchr(endpoint, ':');
    if (!colon || colon - endpoint >= (long)sizeof host) return NULL;
    snprintf(host, sizeof host, "%.*s", (int)(colon - endpoint), endpoint);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    return getaddrinfo(host, colon + 1, &hints, &ai) ? NULL : ai;
}

static int read_line(int fd, char *buf, size_t cap, const struct timespec *deadline) {
    size_t n = 0;
    while (n + 1 < cap && wait_fd(fd, POLLIN, deadline)) {
        if (read(fd, buf + n, 1) != 1) return 0;
        if (buf[n] == '\n') { buf[n] = 0; return 1; }
        n++;
    }
    return 0;
}

// Node 0's rank 0: the other nodes' connections at the endpoint, slot k holding node k's.
static int gather(const char *endpoint, int nnodes, int *fds, const struct timespec *deadline) {
    struct addrinfo *ai = resolve(endpoint, 1);
    int one = 1, lst = ai ? socket(ai->ai_family, SOCK_STREAM, 0) : -1, got = 0;
    if (lst < 0 || setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(lst, ai->ai_addr, ai->ai_addrlen) || listen(lst, nnodes)) {
        fprintf(stderr, "cjoin: cannot listen at %s\n", endpoint);
        if (ai) freeaddrinfo(ai);
        return 0;
    }
    freeaddrinfo(ai);
    while (got < nnodes - 1 && wait_fd(lst, POLLIN, deadline)) {
        int fd = accept(lst, NULL, NULL);
        char line[32];
        int k = fd >= 0 && read_line(fd, line, sizeof line, deadline) ? atoi(line) : -1;
        if (k < 1 || k >= nnodes || fds[k] >= 0) {
            fprintf(stderr, "cjoin: a connection at %s named no free node (%d)\n", endpoint, k);
            if (fd >= 0) close(fd);
            continue;
        }
        fds[k] = fd;
        got++;
    }
    close(lst);
    if (got < nnodes - 1) fprintf(stderr, "cjoin: %d of %d nodes joined at %s\n", got + 1, nnodes, endpoint);
    return got == nnodes - 1;
}

// Node k's rank 0: the port's name from node 0, once node 0 is ready to accept node k.
static int ask_port(const char *endpoint, int node, char *port, const struct timespec *deadline) {
    while (seconds_left(deadline) > 0) {
        struct addrinfo *ai = resolve(endpoint, 0);
        int fd = ai ? socket(ai->ai_family, SOCK_STREAM, 0) : -1;
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            freeaddrinfo(ai);
            char hello[32];
            int n = snprintf(hello, sizeof hello, "%d\n", node);
            int ok = write(fd, hello, n) == n && read_line(fd, port, MPI_MAX_PORT_NAME, deadline);
            close(fd);
            return ok;
        }
        if (fd >= 0) close(fd);
        if (ai) freeaddrinfo(ai);
        usleep(100000);
    }
    return 0;
}

static MPI_Comm merge(MPI_Comm inter, int high) {
    MPI_Comm out;
    MPI_Intercomm_merge(inter, high, &out);
    MPI_Comm_free(&inter);
    return out;
}

MPI_Comm cjoin(int node, int nnodes, const char *endpoint, double timeout_s) {
    int rank, ok = 1, fds[1024];
    char port[MPI_MAX_PORT_NAME] = "";
    MPI_Comm comm = MPI_COMM_WORLD, inter;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (nnodes < 2 || nnodes > 1024 || node < 0 || node >= nnodes) return MPI_COMM_NULL;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)timeout_s;
    for (int k = 0; k < nnodes; k++) fds[k] = -1;
    if (rank == 0 && node == 0) {
        ok = gather(endpoint, nnodes, fds, &deadline);
        if (ok) MPI_Open_port(MPI_INFO_NULL, port);
    } else if (rank == 0) {
        ok = ask_port(endpoint, node, port, &deadline);
        if (!ok) fprintf(stderr, "cjoin: node %d got no MPI port from node 0 at %s\n", node, endpoint);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!ok) return MPI_COMM_NULL;
    if (node > 0) {
        MPI_Comm_connect(port, MPI_INFO_NULL, 0, MPI_COMM_WORLD, &inter);
        comm = merge(inter, 1);
    }
    for (int k = node + 1; k < nnodes; k++) {  // the nodes after this one, in order
        if (rank == 0 && node == 0) {
            ssize_t n = (ssize_t)strlen(port);
            if (write(fds[k], port, n) != n || write(fds[k], "\n", 1) != 1) return MPI_COMM_NULL;
            close(fds[k]);
        }
        MPI_Comm_accept(port, MPI_INFO_NULL, 0, comm, &inter);
        comm = merge(inter, 0);
    }
    if (rank == 0 && node == 0) MPI_Close_port(port);
    return comm;
}
