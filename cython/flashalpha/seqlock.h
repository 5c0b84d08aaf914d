/*
 * Seqlocks for one writer and many readers in other processes (shared memory).
 *
 * The writer makes the counter odd, writes, then makes it even again; a reader copies the data
 * between two reads of the counter and retries when they differ or were odd. The fences follow
 * Boehm, "Can Seqlocks Get Along With Programming Language Memory Models?" (MSPC 2012):
 * writer: store(odd, relaxed); fence(release); data; store(even, release)
 * reader: s1 = load(acquire); data; fence(acquire); s2 = load(relaxed)
 * On x86-64 these compile to plain moves plus compiler barriers; on arm64 to dmb/ldar/stlr.
 */
#ifndef FLASHALPHA_SEQLOCK_H
#define FLASHALPHA_SEQLOCK_H

#include <stdint.h>

static inline void fa_write_begin(uint64_t *lock) {
    uint64_t s = __atomic_load_n(lock, __ATOMIC_RELAXED);
    __atomic_store_n(lock, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void fa_write_end(uint64_t *lock) {
    uint64_t s = __atomic_load_n(lock, __ATOMIC_RELAXED);
    __atomic_store_n(lock, s + 1, __ATOMIC_RELEASE);
}

static inline uint64_t fa_read_begin(const uint64_t *lock) {
    return __atomic_load_n(lock, __ATOMIC_ACQUIRE);
}

static inline int fa_read_retry(const uint64_t *lock, uint64_t begin) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return (begin & 1u) || __atomic_load_n(lock, __ATOMIC_RELAXED) != begin;
}

static inline void fa_store_release(uint64_t *address, uint64_t value) {
    __atomic_store_n(address, value, __ATOMIC_RELEASE);
}

static inline uint64_t fa_load_acquire(const uint64_t *address) {
    return __atomic_load_n(address, __ATOMIC_ACQUIRE);
}

static inline void fa_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
