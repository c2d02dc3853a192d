// bdc-fused-lora.h: one graph node per adapted matrix for bdc-assistant's DisenLoRA adapters.
//
// Copied into llama.cpp's src/ and included by llama-graph.cpp when scripts/llama_build.py builds
// llama-cpp-python (see scripts/llama_patches/README.md).
//
// Why: llama.cpp applies a LoRA as four graph nodes per adapted matrix (A x, B (A x), scale, add). For one
// decoded token B (A x) is one ggml dot per output row, each only rank long, so a Qwen2.5-0.5B adapter on all
// seven projections (168 matrices, 672 extra nodes, each with a thread barrier) cost 12-15 % of decode speed.
// An adapter whose GGUF says bdc.lora_layout = "fused" stores lora_b transposed, ggml shape [out, r] (r rows
// of `out` values), so B h is r axpy passes over contiguous rows, and A x, the products, the scale and the add
// run in one node. A llama.cpp without this patch refuses such a file (the shape check fails), it never
// computes with the transposed factor.
//
// Kernels: on x86-64 CPUs with AVX2, FMA and F16C (checked at run time, so one build runs on any x86-64
// machine) Q8_0 factors take a hand-vectorised path; everything else takes plain loops (the compiler's
// baseline vectorisation).
#pragma once

#include "ggml.h"

#include <cstdint>
#include <cstring>
#if defined(__GNUC__) && !defined(_WIN32)
#    include <sched.h>
#endif

#define BDC_FUSED_LORA_ABI 1
#define BDC_FUSED_LORA_MAX_RANK 256

#if defined(__GNUC__) && defined(__x86_64__)
#    define BDC_X86_AVX2 1
#    include <immintrin.h>
#endif

namespace bdc_fused_lora {

struct block_q8_0 {
    uint16_t d;  // f16 scale
    int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34, "Q8_0 block layout");

static inline float f32_from_bits(uint32_t w) { float f; std::memcpy(&f, &w, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t w; std::memcpy(&w, &f, 4); return w; }

// IEEE half -> float, exact for every input (normals, subnormals, inf, nan) and branch-free, so loops over it
// vectorise; the same construction ggml uses on CPUs without F16C.
static inline float half_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t) h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    return f32_from_bits(sign | (two_w < (1u << 27) ? f32_to_bits(denormalized) : f32_to_bits(normalized)));
}

// Σ row[i]·x[i] over n values, for the types and CPUs the intrinsics path does not take. 16 independent partial
// sums let a compiler vectorise it without -ffast-math; GCC 12 does so only poorly (xmm with shuffles), which is
// why AVX2 CPUs take dots_q8_avx2 for Q8_0 instead.
static inline float dot_row(const void * row, ggml_type type, const float * x, int64_t n) {
    float acc[16] = {0};
    float tail = 0.0f;
    if (type == GGML_TYPE_Q8_0) {
        const block_q8_0 * b = (const block_q8_0 *) row;
        for (int64_t k = 0; k < n / 32; ++k) {
            const float d = half_to_f32(b[k].d);
            const float * xk = x + 32 * k;
            for (int l = 0; l < 16; ++l) {
                acc[l] += d * (xk[l] * (float) b[k].qs[l] + xk[l + 16] * (float) b[k].qs[l + 16]);
            }
        }
    } else if (type == GGML_TYPE_F16) {
        const uint16_t * a = (const uint16_t *) row;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            for (int l = 0; l < 16; ++l) { acc[l] += half_to_f32(a[i + l]) * x[i + l]; }
        }
        for (; i < n; ++i) { tail += half_to_f32(a[i]) * x[i]; }
    } else {
        const float * a = (const float *) row;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            for (int l = 0; l < 16; ++l) { acc[l] += a[i + l] * x[i + l]; }
        }
        for (; i < n; ++i) { tail += a[i] * x[i]; }
    }
    float s = tail;
    for (int l = 0; l < 16; ++l) { s += acc[l]; }
    return s;
}

// y[0..n) += s·row[o0 .. o0+n); for Q8_0, o0 and n are whole blocks.
static inline void axpy_row(float * y, const void * row, ggml_type type, int64_t o0, int64_t n, float s) {
    if (type == GGML_TYPE_Q8_0) {
        const block_q8_0 * b = (const block_q8_0 *) row + o0 / 32;
        for (int64_t k = 0; k < n / 32; ++k) {
            const float sd = s * half_to_f32(b[k].d);
            float * yk = y + 32 * k;
            for (int l = 0; l < 32; ++l) { yk[l] += sd * (float) b[k].qs[l]; }
        }
    } else if (type == GGML_TYPE_F16) {
        const uint16_t * b = (const uint16_t *) row + o0;
        for (int64_t i = 0; i < n; ++i) { y[i] += s * half_to_f32(b[i]); }
    } else {
        const float * b = (const float *) row + o0;
        for (int64_t i = 0; i < n; ++i) { y[i] += s * b[i]; }
    }
}

#ifdef BDC_X86_AVX2
#    define BDC_AVX2 __attribute__((target("avx2,fma,f16c")))

BDC_AVX2 static inline __m256 q8_lo(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)); }
BDC_AVX2 static inline __m256 q8_hi(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))); }
BDC_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// h[j] = scale · Σ A[j]·x for the rank rows j in [j_begin, j_end) of a Q8_0 A; four rows share each x load.
BDC_AVX2 static void dots_q8_avx2(const ggml_tensor * a, const float * x, float scale, float * h, int64_t j_begin, int64_t j_end) {
    const int64_t nb = a->ne[0] / 32;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += 4) {
        const int nr = j_end - j0 < 4 ? (int) (j_end - j0) : 4;
        const block_q8_0 * rows[4];
        for (int jj = 0; jj < 4; ++jj) {
            rows[jj] = (const block_q8_0 *) ((const char *) a->data + (j0 + (jj < nr ? jj : 0)) * a->nb[1]);
        }
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t k = 0; k < nb; ++k) {
            const float * xk = x + 32 * k;
            const __m256 x0 = _mm256_loadu_ps(xk), x1 = _mm256_loadu_ps(xk + 8);
            const __m256 x2 = _mm256_loadu_ps(xk + 16), x3 = _mm256_loadu_ps(xk + 24);
            for (int jj = 0; jj < 4; ++jj) {
                const block_q8_0 * b = rows[jj] + k;
                const __m128i q0 = _mm_loadu_si128((const __m128i *) b->qs);
                const __m128i q1 = _mm_loadu_si128((const __m128i *) (b->qs + 16));
                __m256 p = _mm256_mul_ps(x0, q8_lo(q0));
                p = _mm256_fmadd_ps(x1, q8_hi(q0), p);
                p = _mm256_fmadd_ps(x2, q8_lo(q1), p);
                p = _mm256_fmadd_ps(x3, q8_hi(q1), p);
                acc[jj] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b->d)), p, acc[jj]);
            }
        }
        for (int jj = 0; jj < nr; ++jj) {
            h[j0 + jj] = scale * hsum8(acc[jj]);
        }
    }
}

// y[o0..o1) = res[o0..o1) + Σ_j h[j]·Bt[j][o0..o1) for a Q8_0 Bt; one 32-value block of y stays in registers
// while every rank row adds to it.
BDC_AVX2 static void axpys_q8_avx2(const ggml_tensor * bt, const float * h, const float * res, float * y, int64_t o0, int64_t o1) {
    const int64_t rank = bt->ne[1];
    for (int64_t k = o0 / 32; k < o1 / 32; ++k) {
        __m256 y0 = _mm256_loadu_ps(res + 32 * k), y1 = _mm256_loadu_ps(res + 32 * k + 8);
        __m256 y2 = _mm256_loadu_ps(res + 32 * k + 16), y3 = _mm256_loadu_ps(res + 32 * k + 24);
        for (int64_t j = 0; j < rank; ++j) {
            const block_q8_0 * b = (const block_q8_0 *) ((const char *) bt->data + j * bt->nb[1]) + k;
            const __m256 s = _mm256_set1_ps(h[j] * _cvtsh_ss(b->d));
            const __m128i q0 = _mm_loadu_si128((const __m128i *) b->qs);
            const __m128i q1 = _mm_loadu_si128((const __m128i *) (b->qs + 16));
            y0 = _mm256_fmadd_ps(s, q8_lo(q0), y0);
            y1 = _mm256_fmadd_ps(s, q8_hi(q0), y1);
            y2 = _mm256_fmadd_ps(s, q8_lo(q1), y2);
            y3 = _mm256_fmadd_ps(s, q8_hi(q1), y3);
        }
        _mm256_storeu_ps(y + 32 * k, y0);
        _mm256_storeu_ps(y + 32 * k + 8, y1);
        _mm256_storeu_ps(y + 32 * k + 16, y2);
        _mm256_storeu_ps(y + 32 * k + 24, y3);
    }
}

static bool cpu_has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return yes;
}
#endif

#if defined(__GNUC__) && !defined(_WIN32)
#    define BDC_SPIN 1
// A barrier among the threads computing one node, kept in the node's own op_params (the custom-op parameters
// use the first 24 of its 64 bytes; ggml zeroes the rest when the node is built). Sense-reversing, so the
// same node can run again (graph reuse) with any thread count. ggml runs every node on all of its threads.
struct spin_barrier_state {
    uint32_t arrived;
    uint32_t generation;
};

static inline spin_barrier_state * barrier_of(ggml_tensor * dst) {
    return (spin_barrier_state *) ((char *) dst->op_params + GGML_MAX_OP_PARAMS - sizeof(spin_barrier_state));
}

static void spin_barrier(spin_barrier_state * b, int nth) {
    const uint32_t generation = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) == (uint32_t) nth) {
        __atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->generation, generation + 1, __ATOMIC_RELEASE);
        return;
    }
    for (unsigned spins = 0; __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == generation; ++spins) {
        if (spins >= 256) {
            sched_yield();  // more threads than cores: let the late one run
        } else {
#    if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#    endif
        }
    }
}
#endif

// A node reads 2·rank short rows of the adapter (1–10 KB each), too short for the hardware prefetcher to ramp
// up on: asking for all of this thread's bytes at the start overlaps their memory latencies.
static inline void prefetch_rows(const ggml_tensor * t, int64_t j_begin, int64_t j_end, int64_t o0, int64_t o1) {
#if defined(__GNUC__)
    const size_t row_bytes = ggml_row_size(t->type, o1 - o0);
    const size_t skip = ggml_row_size(t->type, o0);
    for (int64_t j = j_begin; j < j_end; ++j) {
        const char * row = (const char *) t->data + j * t->nb[1] + skip;
        for (size_t i = 0; i < row_bytes; i += 64) {
            __builtin_prefetch(row + i, 0, 3);
        }
    }
#else
    (void) t, (void) j_begin, (void) j_end, (void) o0, (void) o1;
#endif
}

// h[j] = scale · A[j]·x for j in [j_begin, j_end).
static void dots(const ggml_tensor * a, const float * x, float scale, float * h, int64_t j_begin, int64_t j_end, bool fast) {
#ifdef BDC_X86_AVX2
    if (fast) {
        dots_q8_avx2(a, x, scale, h, j_begin, j_end);
        return;
    }
#endif
    (void) fast;
    for (int64_t j = j_begin; j < j_end; ++j) {
        h[j] = scale * dot_row((const char *) a->data + j * a->nb[1], a->type, x, a->ne[0]);
    }
}

// y[o0..o1) = res[o0..o1) + Σ_j h[j]·Bt[j][o0..o1)
static void axpys(const ggml_tensor * bt, const float * h, const float * res, float * y, int64_t o0, int64_t o1, bool fast) {
#ifdef BDC_X86_AVX2
    if (fast) {
        axpys_q8_avx2(bt, h, res, y, o0, o1);
        return;
    }
#endif
    (void) fast;
    std::memcpy(y + o0, res + o0, (o1 - o0) * sizeof(float));
    for (int64_t j = 0; j < bt->ne[1]; ++j) {
        if (h[j] != 0.0f) {
            axpy_row(y + o0, (const char *) bt->data + j * bt->nb[1], bt->type, o0, o1 - o0, h[j]);
        }
    }
}

// dst = res + scale · Bᵀ-rows · h, each thread for its share of output rows (whole 32-value blocks, which keeps
// Q8_0 rows on block bounds), column by column.
// src: res [out, cols], inp (x [in, cols] when a is given, else h = A x [r, cols]), bt [out, r], a [in, r].
// One column with A (a decoded token): the threads split h's rows, publish them in dst's first `rank` floats,
// and meet twice (everyone has read h before anyone overwrites it with output rows).
// dst as scratch is safe only because dst never shares memory with an input: ggml-alloc computes a node in the
// buffer of one of its sources only for the ops ggml_op_can_inplace() lists, and GGML_OP_CUSTOM is not one of
// them (a source's buffer is freed after its last consumer is allocated, not before).
static void apply(ggml_tensor * dst, int ith, int nth, float scale) {
    const ggml_tensor * res = dst->src[0];
    const ggml_tensor * inp = dst->src[1];
    const ggml_tensor * bt = dst->src[2];
    const ggml_tensor * a = dst->src[3];
    const int64_t out = res->ne[0];
    const int64_t cols = ggml_nelements(res) / out;
    const int64_t rank = bt->ne[1];
    const int64_t n_blocks = (out + 31) / 32;
    const int64_t o0 = 32 * (n_blocks * ith / nth);
    const int64_t o1 = 32 * (n_blocks * (ith + 1) / nth) < out ? 32 * (n_blocks * (ith + 1) / nth) : out;
    bool fast = false;
#ifdef BDC_X86_AVX2
    fast = bt->type == GGML_TYPE_Q8_0 && (!a || a->type == GGML_TYPE_Q8_0) && cpu_has_avx2();
#endif
    float h[BDC_FUSED_LORA_MAX_RANK];
    bool have_h = false;
#ifdef BDC_SPIN
    const bool split_h = a && cols == 1 && nth > 1 && out >= rank;
#else
    const bool split_h = false;
#endif
    if (a && cols == 1) {
        prefetch_rows(a, split_h ? rank * ith / nth : 0, split_h ? rank * (ith + 1) / nth : rank, 0, a->ne[0]);
    }
    if (o0 < o1) {
        prefetch_rows(bt, 0, rank, o0, o1);
    }
#ifdef BDC_SPIN
    if (split_h) {
        float * shared = (float *) dst->data;
        dots(a, (const float *) inp->data, scale, shared, rank * ith / nth, rank * (ith + 1) / nth, fast);
        spin_barrier(barrier_of(dst), nth);
        std::memcpy(h, shared, rank * sizeof(float));
        spin_barrier(barrier_of(dst), nth);
        have_h = true;
    }
#endif
    if (o0 >= o1) {
        return;
    }
    for (int64_t t = 0; t < cols; ++t) {
        const float * in_t = (const float *) ((const char *) inp->data + t * inp->nb[1]);
        if (!have_h) {
            if (a) {
                dots(a, in_t, scale, h, 0, rank, fast);
            } else {
                for (int64_t j = 0; j < rank; ++j) {
                    h[j] = scale * in_t[j];
                }
            }
        }
        const float * res_t = (const float *) ((const char *) res->data + t * res->nb[1]);
        axpys(bt, h, res_t, (float *) ((char *) dst->data + t * dst->nb[1]), o0, o1, fast);
    }
}

static void op(ggml_tensor * dst, int ith, int nth, void * userdata) {
    // the adapter scale travels in the userdata pointer's low 32 bits (a graph node has no other float slot)
    const uint32_t bits = (uint32_t) (uintptr_t) userdata;
    apply(dst, ith, nth, f32_from_bits(bits));
}

// One token: a single node does A x, B h, the scale and the add.
// Several tokens (a prompt): H = A X stays a ggml matmul, which batches well, and one node does the rest.
// (The two-node form for one token too measured a decode ratio of 0.93 against 0.95 fused.)
static inline ggml_tensor * build(ggml_context * ctx, ggml_tensor * res, ggml_tensor * cur, ggml_tensor * a, ggml_tensor * bt, float scale) {
    GGML_ASSERT(a->ne[1] == bt->ne[1] && a->ne[1] <= BDC_FUSED_LORA_MAX_RANK);
    GGML_ASSERT(res->type == GGML_TYPE_F32 && cur->type == GGML_TYPE_F32);
    if (!ggml_is_contiguous(cur)) {
        cur = ggml_cont(ctx, cur);
    }
    if (!ggml_is_contiguous(res)) {
        res = ggml_cont(ctx, res);
    }
    void * userdata = (void *) (uintptr_t) f32_to_bits(scale);
    const int64_t cols = ggml_nelements(cur) / cur->ne[0];
    ggml_tensor * args[4] = {res, cur, bt, a};
    int n_args = 4;
    if (cols > 1) {
        args[1] = ggml_mul_mat(ctx, a, cur);
        n_args = 3;
    }
    return ggml_custom_4d(ctx, GGML_TYPE_F32, res->ne[0], res->ne[1], res->ne[2], res->ne[3], args, n_args, op,
                          GGML_N_TASKS_MAX, userdata);
}

}  // namespace bdc_fused_lora
