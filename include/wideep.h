/*
 * wideep.h — C ABI of libwideep, WideEP's EPLB planner (Swift, built with
 * `swift build -c release --product wideep`).
 *
 * Conventions
 *  - Arrays are dense, row-major (C-contiguous). Shapes are given as [dim0, dim1, ...].
 *  - Every buffer is owned by the caller. The library never keeps a pointer after a call returns and never
 *    allocates memory the caller must free. Output buffers may be written partly when a call fails, except where
 *    noted; treat them as undefined unless WIDEEP_OK is returned.
 *  - Layout of physical experts (DeepSeek EPLB's, and WideEP's global slot layout): with R physical experts
 *    (`num_replicas`) on G GPUs, GPU g owns physical experts [g*R/G, (g+1)*R/G). Node n owns GPUs
 *    [n*G/N, (n+1)*G/N).
 *  - Functions that can fail return a status code (WIDEEP_OK on success). The reason is available from
 *    wideep_last_error() on the same thread. No function aborts the process on bad input: sizes and pointers are
 *    checked before any work starts.
 *
 * Thread safety
 *  - All functions are reentrant and may be called from any number of threads at once. Results never depend on
 *    other calls; the last-error message is per thread.
 *  - wideep_plan and wideep_rebalance_experts plan layers on the calling thread and on the library's planning
 *    threads, which each take the next unplanned layer. The threads are started by the first call that needs them
 *    and sleep between calls (after polling for at most 50 microseconds); they block every signal. The library
 *    registers pthread_atfork handlers, so a host may fork at any time (the child starts its own threads on its
 *    first call). One call uses them at a time: a concurrent call plans on its own thread. The environment variable WIDEEP_NUM_THREADS caps the threads of a call, the caller
 *    included (default: the processors the process may run on; 1 plans on the calling thread only); a call uses
 *    at most one thread per 2 layers, and calls with layers * (num_experts + num_replicas) < 1024 plan on the
 *    calling thread only.
 */
#ifndef WIDEEP_H
#define WIDEEP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define WIDEEP_OK 0
#define WIDEEP_ERROR_INVALID_ARGUMENT 1 /* a size, shape, value or name is invalid */
#define WIDEEP_ERROR_NULL_POINTER 2     /* a required pointer is NULL */
#define WIDEEP_ERROR_CAPACITY 3         /* an output buffer is too small (max_replicas); no output is written */
#define WIDEEP_ERROR_INFEASIBLE 4       /* a valid request the planner cannot satisfy */
#define WIDEEP_ERROR_INTERNAL 5         /* unexpected failure inside the library */

/* Version of this ABI (changes when a signature or status code changes, or a function is added). This header
 * describes version 4 (version 3 added wideep_log2phy, version 4 wideep_rebalance_experts). */
#define WIDEEP_ABI_VERSION 4
int32_t wideep_abi_version(void);

/* Library version, e.g. "0.1.0". Static string owned by the library. */
const char *wideep_version(void);

/* Message of the calling thread's last failed call, or "" if its last call succeeded. Owned by the library;
 * valid until the calling thread's next wideep call. */
const char *wideep_last_error(void);

/*
 * Plans the replicas of every logical expert and the GPU of each replica, for every layer: the contract of
 * DeepSeek EPLB's rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus).
 *
 *  loads            [num_layers, num_experts] double, finite and >= 0 (tokens per expert; any scale).
 *  policy           "balanced" (WideEP's min-max planner, default when NULL), "deepseek" (DeepSeek's hierarchical /
 *                   global algorithm), "greedy" (TensorRT-LLM's) or "none" (identity; needs num_replicas ==
 *                   num_experts).
 *  num_replicas     physical experts per layer: a multiple of num_gpus and >= num_experts.
 *  num_groups       expert groups (DeepSeek-V3: 8): num_experts must be a multiple of it; 1 for none.
 *  num_nodes        nodes; num_gpus must be a multiple of it.
 *  num_gpus         EP ranks.
 *  allow_same_rank  nonzero allows two replicas of one expert on one GPU (DeepSeek's algorithm may do that; it is
 *                   needed when num_replicas > num_experts * num_gpus). Zero forbids it.
 *  current_phy2log  [num_layers, num_replicas] int64 placement in use, or NULL. When given, the planner keeps as
 *                   many physical experts in place as it can (migration-aware re-planning).
 *  max_replicas     last dimension of log2phy; num_replicas - num_experts + 1 always suffices.
 *  phy2log          out [num_layers, num_replicas] int64: logical expert of each physical expert.
 *  log2phy          out [num_layers, num_experts, max_replicas] int64, or NULL: the physical experts of each
 *                   logical expert in ascending order, padded with -1. If an expert needs more than max_replicas
 *                   entries, WIDEEP_ERROR_CAPACITY is returned and no output is written.
 *  logcnt           out [num_layers, num_experts] int64, or NULL: replicas per logical expert (>= 1).
 *
 * Fast path: with log2phy NULL the planner writes phy2log and logcnt rows directly (no scratch copy); a caller that
 * wants a tight log2phy passes NULL here, takes X = max(logcnt) and calls wideep_log2phy with max_replicas = X.
 */
int32_t wideep_plan(const double *loads, int64_t num_layers, int64_t num_experts, const char *policy,
                    int64_t num_replicas, int64_t num_groups, int64_t num_nodes, int64_t num_gpus,
                    int32_t allow_same_rank, const int64_t *current_phy2log, int64_t max_replicas,
                    int64_t *phy2log, int64_t *log2phy, int64_t *logcnt);

/*
 * Allocator of wideep_rebalance_experts' log2phy: returns a C-contiguous buffer of
 * num_layers * num_experts * width int64 that stays valid until the call returns, or NULL on failure.
 */
typedef int64_t *(*wideep_log2phy_allocator)(void *context, int64_t width);

/*
 * DeepSeek EPLB's rebalance_experts in one call: plans every layer as wideep_plan does (same arguments, same
 * phy2log and logcnt), then calls allocate_log2phy(context, X) once, on the calling thread, for
 * X = the largest replica count of any expert in any layer, and fills that buffer as log2phy
 * [num_layers, num_experts, X] (each expert's physical experts in ascending order, padded with -1). Planning and the
 * fill run on the library's threads; the caller allocates exactly the width it needs, with no second call.
 *
 *  logcnt            out [num_layers, num_experts] int64 (required).
 *  allocate_log2phy  required; called at most once, only after every layer was planned. If it returns NULL the
 *                    call returns WIDEEP_ERROR_NULL_POINTER (phy2log and logcnt are written, log2phy is not).
 *  context           passed to allocate_log2phy unchanged.
 */
int32_t wideep_rebalance_experts(const double *loads, int64_t num_layers, int64_t num_experts, const char *policy,
                                 int64_t num_replicas, int64_t num_groups, int64_t num_nodes, int64_t num_gpus,
                                 int32_t allow_same_rank, const int64_t *current_phy2log, int64_t *phy2log,
                                 int64_t *logcnt, wideep_log2phy_allocator allocate_log2phy, void *context);

/*
 * The physical experts of each logical expert, from a placement (DeepSeek's log2phy).
 *
 *  phy2log       [num_layers, num_replicas] int64: logical expert of each physical expert, in 0..num_experts-1.
 *  max_replicas  last dimension of log2phy (>= 1).
 *  log2phy       out [num_layers, num_experts, max_replicas] int64: each expert's physical experts in ascending
 *                order, padded with -1 (an expert without replicas gets a row of -1). If an expert has more than
 *                max_replicas physical experts, WIDEEP_ERROR_CAPACITY is returned and nothing is written.
 */
int32_t wideep_log2phy(const int64_t *phy2log, int64_t num_layers, int64_t num_experts, int64_t num_replicas,
                       int64_t max_replicas, int64_t *log2phy);

/*
 * Splits one batch's tokens of one layer over the replicas of its placement (WideEP's ReplicaSplit).
 *
 *  counts       [num_experts] int64 >= 0: this batch's tokens routed to each logical expert.
 *  phy2log      [num_replicas] int64: the layer's placement (every expert present; replicas may share a GPU).
 *  num_gpus     EP ranks; num_replicas must be a multiple of it.
 *  policy       "balanced" (minimizes the largest GPU load; default when NULL) or "even" (round-robin).
 *  quotas       out [num_replicas] int64: tokens sent to each physical expert. For every expert, the quotas of its
 *               replicas sum to counts[expert].
 */
int32_t wideep_split(const int64_t *counts, int64_t num_experts, const int64_t *phy2log, int64_t num_replicas,
                     int64_t num_gpus, const char *policy, int64_t *quotas);

/*
 * Per-layer GPU load imbalance of a placement.
 *
 *  loads         [num_layers, num_experts] double, finite and >= 0.
 *  phy2log       [num_layers, num_replicas] int64.
 *  split         "even" (each replica gets load / replica count, DeepSeek's model; default when NULL) or
 *                "balanced" (whole tokens routed by the ReplicaSplit; loads must be whole numbers).
 *  ratio         out [num_layers] double: (max - mean) / mean of the GPU loads (0 when all loads are 0).
 *  balancedness  out [num_layers] double, or NULL: mean / max of the GPU loads (1 when all loads are 0).
 */
int32_t wideep_imbalance(const double *loads, int64_t num_layers, int64_t num_experts, const int64_t *phy2log,
                         int64_t num_replicas, int64_t num_gpus, const char *split, double *ratio,
                         double *balancedness);

#ifdef __cplusplus
}
#endif

#endif /* WIDEEP_H */
