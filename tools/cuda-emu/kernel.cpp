// CUDA emulator (tools/cuda-emu): running a kernel's grid on the host. Each block's threads are
// fibers with stacks of their own, switched (a few instructions, no system call) only at
// __syncthreads and warp shuffles; the scheduler releases a barrier when every thread of the block
// (or lane of the warp) that has not exited is waiting at it, and reports a barrier that can never be
// released (threads waiting at different barriers) instead of hanging.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define GLIA_EMU_NO_DEVICE_MACROS
#include "device.h"
#include "emu.h"

namespace glia_emu {

thread_local const ThreadVars* t_vars = nullptr;

// Saves the callee-saved registers on the current stack, stores the stack pointer in *from and
// continues on the stack `to` (System V x86-64).
extern "C" void glia_emu_switch(void** from, void* to);
asm(R"(
  .text
  .globl glia_emu_switch
  .type glia_emu_switch, @function
glia_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size glia_emu_switch, .-glia_emu_switch
)");

namespace {

constexpr size_t kStack = 256 << 10, kGuard = 4096;
constexpr int kMaxThreads = 1024;

enum State { Ready, AtBlockBarrier, AtWarpBarrier, Exited };

struct Fiber {
  void* sp = nullptr;
  State state = Ready;
  ThreadVars vars{};
};

struct Engine {
  std::vector<Fiber> fibers;
  char* stacks = nullptr;
  void* scheduler_sp = nullptr;
  int current = -1;
  const std::function<void()>* body = nullptr;
  uint64_t slots[kMaxThreads] = {};
  std::string where;

  Engine() : fibers(kMaxThreads) {
    size_t bytes = kMaxThreads * (kStack + kGuard);
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "CUDA emulator: cannot map %zu bytes of fiber stacks\n", bytes);
      std::abort();
    }
    stacks = static_cast<char*>(m);
    // A guard page under each stack: an overflow faults instead of corrupting its neighbour.
    for (int i = 0; i < kMaxThreads; ++i) mprotect(stacks + i * (kStack + kGuard), kGuard, PROT_NONE);
  }
  ~Engine() { munmap(stacks, kMaxThreads * (kStack + kGuard)); }

  /// Back to the scheduler; returns when this fiber is released.
  void yield(State s) {
    Fiber& f = fibers[current];
    f.state = s;
    glia_emu_switch(&f.sp, scheduler_sp);
  }
};

Engine& engine() {
  thread_local Engine e;
  return e;
}

[[noreturn]] void fiber_entry() {
  Engine& e = engine();
  (*e.body)();
  e.yield(Exited);
  std::abort();  // an exited fiber is never resumed
}

void* fresh_stack(Engine& e, int i) {
  char* top = e.stacks + i * (kStack + kGuard) + kGuard + kStack;  // 16-byte aligned
  auto* sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                // fiber_entry's "return address"
  *--sp = reinterpret_cast<void*>(&fiber_entry);  // where glia_emu_switch's ret goes
  for (int r = 0; r < 6; ++r) *--sp = nullptr;    // rbp rbx r12-r15
  return sp;
}

bool reverse_order() {
  static const bool r = [] {
    const char* v = std::getenv("GLIA_EMU_REVERSE");
    return v && *v && *v != '0';
  }();
  return r;
}

[[noreturn]] void deadlock(const Engine& e, int n, const dim3& b) {
  std::string states;
  for (int i = 0; i < n; ++i) states += "0123"[e.fibers[i].state];
  std::fprintf(stderr,
               "CUDA emulator: kernel launched at %s: block (%u, %u, %u): threads wait at barriers that can never "
               "all be reached (per thread: 0 running, 1 __syncthreads, 2 warp shuffle, 3 exited): %s\n",
               e.where.c_str(), b.x, b.y, b.z, states.c_str());
  std::abort();
}

void run_block(Engine& e, const dim3& grid, const dim3& block, const dim3& bid) {
  const int n = static_cast<int>(block.x * block.y * block.z);
  for (int i = 0; i < n; ++i) {
    Fiber& f = e.fibers[i];
    f.sp = fresh_stack(e, i);
    f.state = Ready;
    f.vars.thread_idx = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    f.vars.block_idx = uint3{bid.x, bid.y, bid.z};
    f.vars.block_dim = block;
    f.vars.grid_dim = grid;
  }
  const bool rev = reverse_order();
  for (;;) {
    for (int k = 0; k < n; ++k) {
      int i = rev ? n - 1 - k : k;
      if (e.fibers[i].state != Ready) continue;
      e.current = i;
      t_vars = &e.fibers[i].vars;
      glia_emu_switch(&e.scheduler_sp, e.fibers[i].sp);
    }
    t_vars = nullptr;
    // Everyone has exited or waits. Release each warp whose live lanes all wait at a shuffle, else
    // the block if all its live threads wait at __syncthreads.
    bool live = false, released = false, all_block = true;
    for (int w = 0; w * 32 < n; ++w) {
      bool any = false, all = true;
      for (int i = w * 32; i < n && i < w * 32 + 32; ++i) {
        State s = e.fibers[i].state;
        if (s == Exited) continue;
        live = true;
        if (s != AtBlockBarrier) all_block = false;
        if (s == AtWarpBarrier)
          any = true;
        else
          all = false;
      }
      if (any && all) {
        for (int i = w * 32; i < n && i < w * 32 + 32; ++i)
          if (e.fibers[i].state == AtWarpBarrier) e.fibers[i].state = Ready;
        released = true;
      }
    }
    if (!live) return;
    if (released) continue;
    if (!all_block) deadlock(e, n, bid);
    for (int i = 0; i < n; ++i)
      if (e.fibers[i].state == AtBlockBarrier) e.fibers[i].state = Ready;
  }
}

}  // namespace

void sync_threads() {
  Engine& e = engine();
  if (e.current < 0 || !t_vars) {
    std::fprintf(stderr, "CUDA emulator: __syncthreads outside a kernel\n");
    std::abort();
  }
  e.yield(AtBlockBarrier);
}

uint64_t shuffle(uint64_t v, int mode, int arg, int width) {
  Engine& e = engine();
  const int i = e.current, lane = i % 32, base = i - lane;
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    std::fprintf(stderr, "CUDA emulator: warp shuffle width %d is not a power of two up to 32 (kernel at %s)\n", width,
                 e.where.c_str());
    std::abort();
  }
  const int seg = lane - lane % width, in = lane % width;
  int src = lane;
  switch (mode) {
    case 0:
      src = seg + ((arg % width) + width) % width;
      break;
    case 1:
      src = in + arg < width ? lane + arg : lane;
      break;
    case 2:
      src = in - arg >= 0 ? lane - arg : lane;
      break;
    default:
      src = seg + ((in ^ arg) & (width - 1));
      break;
  }
  e.slots[i] = v;
  e.yield(AtWarpBarrier);  // every lane has written its value
  uint64_t r = e.slots[base + src];
  e.yield(AtWarpBarrier);  // every lane has read, before the next shuffle writes
  return r;
}

void run_grid(const Cfg& cfg, const std::function<void()>& body) {
  Engine& e = engine();
  if (e.current >= 0 || t_vars) {
    std::fprintf(stderr, "CUDA emulator: a kernel launched from inside a kernel (at %s)\n", cfg.where.file_name());
    std::abort();
  }
  const std::function<void()>* outer = e.body;
  e.body = &body;
  e.where = std::string(cfg.where.file_name()) + ":" + std::to_string(cfg.where.line());
  for (unsigned z = 0; z < cfg.grid.z; ++z)
    for (unsigned y = 0; y < cfg.grid.y; ++y)
      for (unsigned x = 0; x < cfg.grid.x; ++x) run_block(e, cfg.grid, cfg.block, dim3(x, y, z));
  e.current = -1;
  e.body = outer;
}

}  // namespace glia_emu
