// One communicator over the ranks of several nodes, each started by its own mpiexec (models/cjoin.c).
#ifndef CJOIN_H
#define CJOIN_H

#include <mpi.h>

// Collective over MPI_COMM_WORLD (this node's ranks): the communicator of every node's ranks,
// this node's at node x its size onwards; MPI_COMM_NULL, with a message, when the nodes did not
// all meet at the endpoint ("HOST:PORT", node 0's) within timeout_s.
MPI_Comm cjoin(int node, int nnodes, const char *endpoint, double timeout_s);

#endif
