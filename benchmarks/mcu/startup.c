/* Minimal freestanding startup for the edgekd Cortex-M benchmarks: vector table, reset handler
 * (copy .data, zero .bss, call bench_main), and the memset/memcpy/memmove that GCC may emit
 * calls to even under -ffreestanding. No libc, no newlib. */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
void bench_main(void);
void Reset_Handler(void);

__attribute__((section(".isr_vector"), used))
void *const edgekd_vectors[2] = {(void *)&_estack, (void *)Reset_Handler};

/* Byte loops, kept simple; -fno-tree-loop-distribute-patterns (set by the build) stops GCC from
 * turning these loops back into calls to themselves. */
void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) { while (n--) *d++ = *s++; }
    else { d += n; s += n; while (n--) *--d = *--s; }
    return dst;
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    bench_main();
    for (;;) {}
}
