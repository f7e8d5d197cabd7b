/* Compiles comm.h as C (the API must be usable from any language with a C FFI) and runs a
 * one-rank communicator through it: init, a sum all-reduce checked by hand, an error path. */
#include <flagstone/comm.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  fsUniqueId id;
  fsComm_t comm = NULL;
  double data[3] = {1.5, -2.0, 4.0};
  double out[3] = {0, 0, 0};
  if (fsGetUniqueId(&id) != fsSuccess || fsCommInitRank(&comm, 1, id, 0) != fsSuccess) {
    fprintf(stderr, "init failed: %s\n", fsGetLastError());
    return 1;
  }
  if (fsAllReduce(fsHostBuf(data), fsHostBuf(out), 3, fsFloat64, fsSum, comm, NULL) != fsSuccess ||
      out[0] != 1.5 || out[1] != -2.0 || out[2] != 4.0) {
    fprintf(stderr, "allreduce failed: %s\n", fsGetLastError());
    return 1;
  }
  if (fsBroadcast(fsHostBuf(data), fsHostBuf(out), 3, fsFloat64, 7, comm, NULL) !=
          fsInvalidArgument ||
      strstr(fsGetLastError(), "root 7") == NULL) {
    fprintf(stderr, "bad root not reported: %s\n", fsGetLastError());
    return 1;
  }
  if (fsCommDestroy(comm) != fsSuccess) return 1;
  printf("c api ok\n");
  return 0;
}
