#define _GNU_SOURCE
// Weight GB/s of one matrix-vector product through the kernels' C entry points, one or more threads, exact (laid-out
// x: pk_exact_prepare + pk_matvec_exact_prepared; pk_matmul_rows on x as it is for the types without a laid-out x,
// f32 / f16 / bf16) or native (pk_native_prepare + pk_matmul_rows_native), best of 15.
// Random block bytes (speed only; the values are not checked). The wide-row measurements in docs/quantization.md
// ("Wide rows cost more") come from it. Run by hand, not in CI:
//   S=Sources/CPersonaKernels; clang -O3 -fno-math-errno -ffp-contract=off -I$S/include -I$S $S/*.c \
//       Scripts/kernel_rows_bench.c -lm -pthread -o /tmp/krb
//   /tmp/krb DTYPE ROWS COLS THREADS NATIVE      e.g. /tmp/krb 5 16384 8192 2 0   (5 = q4_K, kernels.h codes)
//   PERSONA_SIMD=avx2 /tmp/krb ...               another SIMD level
#include "kernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
typedef struct { int dt, native; const void *W; int64_t cols; const void *xp; const float *x; float *y; int64_t r0, r1; } job;
static void *run(void *a){ job *j=a; if(j->native) pk_matmul_rows_native(j->dt,j->W,j->cols,j->xp,1,j->y,0,j->r0,j->r1); else if(j->xp) pk_matvec_exact_prepared(j->dt,j->W,j->cols,j->xp,j->y,j->r0,j->r1); else pk_matmul_rows(j->dt,j->W,j->cols,j->x,j->cols,1,j->y,0,j->r0,j->r1); return 0;}
int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s DTYPE ROWS COLS THREADS NATIVE\n", argv[0]); return 2; }
  int dt=atoi(argv[1]); int64_t rows=atoll(argv[2]), cols=atoll(argv[3]); int threads=atoi(argv[4]); if(threads<1||threads>8){fprintf(stderr,"THREADS: 1..8\n");return 2;} int native=atoi(argv[5]);
  size_t rb=pk_row_bytes(dt,cols); size_t bytes=rb*rows;
  uint8_t *W=aligned_alloc(64,(bytes+63)/64*64); srand(1);
  for(size_t i=0;i<bytes;i++) W[i]=rand();
  float *x=aligned_alloc(64,cols*4); for(int64_t i=0;i<cols;i++) x[i]=(rand()/(float)RAND_MAX)-0.5f;
  float *y=aligned_alloc(64,rows*4);
  void *xp;
  if(native){ size_t s=pk_native_x_stride(dt,cols); if(!s){printf("no native form\n");return 1;} xp=aligned_alloc(64,s); pk_native_prepare(dt,x,cols,cols,xp,0,1);} 
  else { int64_t f=pk_exact_x_floats(dt,cols); xp=NULL; if(f){ xp=aligned_alloc(64,f*4); pk_exact_prepare(dt,x,cols,xp);} }
  double best=1e9;
  for(int rep=0;rep<15;rep++){
    pthread_t th[8]; job j[8];
    double t0=now();
    for(int t=0;t<threads;t++){ j[t]=(job){dt,native,W,cols,xp,x,y,rows*t/threads,rows*(t+1)/threads}; if(t) pthread_create(&th[t],0,run,&j[t]); }
    run(&j[0]); for(int t=1;t<threads;t++) pthread_join(th[t],0);
    double dtm=now()-t0; if(dtm<best) best=dtm;
  }
  printf("dtype %d %s threads %d: %.2f GB/s (%.3f ms)\n",dt,native?"native":"exact",threads,bytes/best/1e9,best*1e3);
}
