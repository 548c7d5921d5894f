// Plan: the order, kernels, concrete shapes and memory plan of a graph for fixed input shapes.
#include "glia/graph/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "glia/autograd/autograd.h"
#include "glia/core/cuda_hooks.h"
#include "glia/core/scratch.h"
#include "glia/graph/infer.h"
#include "glia/graph/pass_utils.h"
#include "glia/ops/functions.h"

namespace glia::graph {
namespace {

constexpr int64_t kAlign = 64;
int64_t aligned(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
constexpr int64_t kMinScratch = int64_t(64) << 10;  // smaller free stretches are not offered as scratch

// GLIA_PROFILE=1: time every kernel a plan runs and print the totals per op when the process exits.
struct Profile {
  struct Row {
    double seconds = 0;
    int64_t calls = 0;
  };
  std::mutex mu;
  std::unordered_map<std::string, Row> rows;
  ~Profile() {
    if (rows.empty()) return;
    std::vector<std::pair<std::string, Row>> v(rows.begin(), rows.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
    double total = 0;
    for (auto& r : v) total += r.second.seconds;
    std::fprintf(stderr, "glia profile (compiled graphs): %.3f s in kernels\n%-28s %10s %10s %7s\n", total, "op",
                 "calls", "us/call", "share");
    for (auto& [op, r] : v)
      std::fprintf(stderr, "%-28s %10lld %10.2f %6.1f%%\n", op.c_str(), static_cast<long long>(r.calls),
                   r.seconds / static_cast<double>(r.calls) * 1e6, 100 * r.seconds / total);
  }
};

Profile* profile() {
  static Profile* p = [] {
    const char* e = std::getenv("GLIA_PROFILE");
    if (!e || !*e || std::string(e) == "0") return static_cast<Profile*>(nullptr);
    static Profile instance;
    return &instance;
  }();
  return p;
}

/// Ops whose kernels compute each output element from the input elements at the same index only,
/// so that the output may overwrite an input of its shape and dtype.
bool elementwise_in_place(const Node& n) {
  static const std::set<std::string> ops{"fused_elementwise",
                                         "relu_backward",
                                         "sigmoid_backward",
                                         "tanh_backward",
                                         "add",
                                         "sub",
                                         "mul",
                                         "div",
                                         "maximum",
                                         "minimum",
                                         "neg",
                                         "abs",
                                         "exp",
                                         "log",
                                         "sqrt",
                                         "rsqrt",
                                         "square",
                                         "relu",
                                         "sigmoid",
                                         "tanh"};
  return n.kind == NodeKind::Op && ops.count(n.op->name()) > 0;
}

bool is_plain_op(const Node& n) { return n.kind == NodeKind::Op && !n.op->is_view() && !n.has_side_effects(); }

}  // namespace

Plan::Plan(Graph& g, std::vector<Value*> feeds, const std::vector<Shape>& feed_shapes, std::vector<Value*> fetches,
           std::vector<Value*> targets, PlanOptions o)
    : graph_(g), feeds_(std::move(feeds)), fetches_(std::move(fetches)), feed_shapes_(feed_shapes) {
  GLIA_CHECK(feeds_.size() == feed_shapes_.size(), InternalError, "plan: feeds and shapes differ in number");
  // What has to run: the producers of fetches and targets, their inputs, and (for traced
  // functions) every node with side effects.
  std::set<const Node*> needed;
  std::vector<const Node*> stack;
  for (Value* v : fetches_) stack.push_back(v->producer);
  for (Value* v : targets) stack.push_back(v->producer);
  if (o.run_all_side_effects)
    for (auto& n : g.nodes())
      if (n->has_side_effects()) stack.push_back(n.get());
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!needed.insert(n).second) continue;
    for (Value* v : n->inputs) stack.push_back(v->producer);
  }

  // Tensors made while tracing and written in place (an accumulator filled by add_) are fresh in
  // every eager call: each run starts them from their traced value again. State that something
  // outside the graph holds (an optimizer's slots) keeps what the runs write.
  {
    detail::GraphInfo info(g);
    graph_hook::Suspend eager;
    for (auto& n : g.nodes())
      if (needed.count(n.get()) && n->kind == NodeKind::Constant && n->tensor.defined() &&
          info.written(n->outputs[0]) && n->tensor.impl_ptr().use_count() == 1 && n->tensor.storage() &&
          n->tensor.storage().use_count() == 1)
        fresh_.push_back({n.get(), n->tensor.clone()});
  }

  // The device: given, else that of the tensors the graph captured (a model's weights).
  device_ = o.device.value_or(Device::cpu());
  if (!o.device)
    for (auto& n : g.nodes())
      if (needed.count(n.get()) && n->kind != NodeKind::Op && n->tensor.defined() && n->tensor.device().is_cuda()) {
        device_ = n->tensor.device();
        break;
      }
  bool reads_cpu_at_run_time = false;
  if (!device_.is_cpu()) {
    detail::GraphInfo info(g);
    graph_hook::Suspend eager;
    no_grad no_tape;
    std::set<const Node*> fresh_nodes;
    for (auto& [n, initial] : fresh_) fresh_nodes.insert(n);
    for (auto& f : fresh_) {
      f.first->tensor = f.first->tensor.to(device_);
      f.second = f.second.to(device_);
    }
    for (auto& np : g.nodes()) {
      Node& n = *np;
      if (!needed.count(&n) || !n.tensor.defined() || n.tensor.device() == device_ || fresh_nodes.count(&n)) continue;
      bool scalar_on_cpu = n.tensor.dim() == 0 && n.tensor.device().is_cpu();
      if (n.kind == NodeKind::Constant && !info.written(n.outputs[0])) {
        n.tensor = n.tensor.to(device_);  // made while tracing: it can live on the device from now on
      } else if (scalar_on_cpu) {
        reads_cpu_at_run_time = true;  // a number held outside: moved per run (kernels accept CPU numbers)
      } else {
        throw DeviceError(glia::detail::str("graph on ", device_.str(), ": '", n.name, "' is a tensor of shape ",
                                            to_string(n.tensor.shape()), " on ", n.tensor.device().str(),
                                            "; move it to ", device_.str(), " (to(Device)) before tracing"));
      }
    }
  }
  want_graph_ = o.cuda_graph && device_.is_cuda() && !reads_cpu_at_run_time && profile() == nullptr;
  if (const char* e = std::getenv("GLIA_CUDA_GRAPHS"); e && std::string(e) == "0") want_graph_ = false;

  // Concrete shapes, in order.
  std::map<const Value*, size_t> feed_index;
  for (size_t i = 0; i < feeds_.size(); ++i) feed_index[feeds_[i]] = i;
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (!needed.count(&n)) continue;
    switch (n.kind) {
      case NodeKind::Placeholder: {
        auto it = feed_index.find(n.outputs[0]);
        GLIA_CHECK(it != feed_index.end(), ValueError, "placeholder '", n.name,
                   "' needs a value: pass it in the feeds (it has shape ", to_string(n.outputs[0]->shape), ", ",
                   name(n.outputs[0]->dtype), ")");
        const Shape& want = n.outputs[0]->shape;
        const Shape& got = feed_shapes_[it->second];
        bool ok = want.size() == got.size();
        for (size_t d = 0; ok && d < want.size(); ++d) ok = want[d] < 0 || want[d] == got[d];
        GLIA_CHECK(ok, ShapeError, "placeholder '", n.name, "' expects shape ", to_string(want),
                   ", got a feed of shape ", to_string(got));
        shapes_[n.outputs[0]] = got;
        break;
      }
      case NodeKind::Capture:
      case NodeKind::Constant:
      case NodeKind::Variable:
        shapes_[n.outputs[0]] = n.tensor.shape();
        break;
      case NodeKind::Op: {
        bool known = true;
        for (Value* v : n.outputs)
          for (int64_t d : v->shape) known = known && d >= 0;
        if (known) {
          for (Value* v : n.outputs) shapes_[v] = v->shape;
          break;
        }
        std::vector<Shape> ins;
        for (Value* v : n.inputs) ins.push_back(shapes_.at(v));
        std::vector<TensorSpec> specs = infer_node(n, ins);
        for (size_t i = 0; i < n.outputs.size(); ++i) shapes_[n.outputs[i]] = n.inplace ? ins[0] : specs[i].shape;
        break;
      }
    }
  }

  // Slots and steps.
  auto slot = [&](const Value* v) {
    auto [it, fresh] = slot_of_.emplace(v, static_cast<int>(slot_of_.size()));
    return it->second;
  };
  // Every feed has a slot, needed or not (TF1 allows feeding what the fetches do not read).
  for (Value* f : feeds_) slot(f);
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (!needed.count(&n)) continue;
    Step s;
    s.node = &n;
    for (Value* v : n.inputs) s.in.push_back(slot(v));
    for (Value* v : n.outputs) s.out.push_back(slot(v));
    if (n.kind == NodeKind::Op && !n.op->is_view() && !n.inplace) {
      s.kernel = n.op->kernel_for(device_.type);
      GLIA_CHECK(s.kernel != nullptr, DeviceError, n.op->name(), ": no kernel for device ", device_.str(),
                 " (in a graph planned for ", device_.str(), ")");
    }
    steps_.push_back(std::move(s));
  }

  // Memory plan. A buffer belongs to a plain op's output; views and in-place results share
  // their input's buffer, which then lives until their last use too.
  const int64_t kForever = std::numeric_limits<int64_t>::max();
  std::map<const Value*, const Value*> root;
  std::map<const Value*, int64_t> last_use;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Node& n = *steps_[i].node;
    for (Value* v : n.inputs) {
      const Value* r = root.count(v) ? root[v] : v;
      last_use[r] = std::max(last_use[r], static_cast<int64_t>(i));
    }
    for (Value* v : n.outputs) {
      if (n.kind == NodeKind::Op && (n.op->is_view() || n.inplace)) {
        const Value* in0 = n.inputs[0];
        root[v] = root.count(in0) ? root[in0] : in0;
      } else {
        root[v] = v;
        last_use[v] = std::max(last_use[v], static_cast<int64_t>(i));
      }
    }
  }
  for (Value* v : fetches_) last_use[root.count(v) ? root[v] : v] = kForever;
  // Buffers: each plain op's output, except that an element-wise op whose input dies at it writes
  // its result over that input (less memory, and the result lands in lines the input just brought
  // into cache); the two then form one buffer living from the first's definition to the last use.
  struct Buffer {
    int64_t bytes = 0, first = 0, last = 0, offset = 0;
  };
  std::vector<Buffer> buffers;
  std::map<const Value*, size_t> buffer_of;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Node& n = *steps_[i].node;
    if (!is_plain_op(n) && !(n.kind == NodeKind::Op && n.op->mutates_inputs())) continue;
    for (Value* v : n.outputs) {
      int64_t bytes = aligned(known_numel(shapes_[v]) * static_cast<int64_t>(itemsize(v->dtype)));
      if (bytes == 0) continue;
      unshared_bytes_ += bytes;
      const Value* reuse = nullptr;
      if (n.outputs.size() == 1 && elementwise_in_place(n))
        for (Value* u : n.inputs)
          if (buffer_of.count(u) && root[u] == u && last_use[u] == static_cast<int64_t>(i) && u->dtype == v->dtype &&
              shapes_[u] == shapes_[v] && buffers[buffer_of[u]].last == static_cast<int64_t>(i)) {
            reuse = u;
            break;
          }
      if (reuse) {
        buffer_of[v] = buffer_of[reuse];
      } else {
        buffer_of[v] = buffers.size();
        buffers.push_back({bytes, static_cast<int64_t>(i), 0, 0});
      }
      Buffer& b = buffers[buffer_of[v]];
      b.last = std::max(last_use[v], static_cast<int64_t>(i));
    }
  }
  // Placement, greedy by size: the largest buffers first, each at the lowest offset where it
  // overlaps no placed buffer that is alive at the same time (close to the live-size bound).
  std::vector<size_t> by_size(buffers.size());
  for (size_t i = 0; i < by_size.size(); ++i) by_size[i] = i;
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](size_t x, size_t y) { return buffers[x].bytes > buffers[y].bytes; });
  std::vector<size_t> placed;
  for (size_t bi : by_size) {
    Buffer& b = buffers[bi];
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of overlapping placed buffers
    for (size_t pj : placed) {
      const Buffer& p = buffers[pj];
      if (p.first <= b.last && b.first <= p.last) busy.push_back({p.offset, p.offset + p.bytes});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto& [lo, hi] : busy) {
      if (lo - off >= b.bytes) break;
      off = std::max(off, hi);
    }
    b.offset = off;
    arena_bytes_ = std::max(arena_bytes_, off + b.bytes);
    placed.push_back(bi);
  }
  // Each kernel's temporaries (cuDNN workspaces, layout copies) go to the largest stretch of the
  // arena that holds nothing while it runs, instead of adding to the step's memory.
  scratch_.assign(steps_.size(), {0, 0});
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (!is_plain_op(*steps_[i].node)) continue;
    auto at = static_cast<int64_t>(i);
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (const Buffer& b : buffers)
      if (b.first <= at && at <= b.last) busy.push_back({b.offset, b.offset + b.bytes});
    busy.push_back({arena_bytes_, arena_bytes_});
    std::sort(busy.begin(), busy.end());
    int64_t free_from = 0;
    for (auto& [lo, hi] : busy) {
      if (lo - free_from > scratch_[i].second - scratch_[i].first) scratch_[i] = {free_from, lo};
      free_from = std::max(free_from, hi);
    }
  }
  std::map<const Value*, int64_t> offset;
  for (auto& [v, bi] : buffer_of) offset[v] = buffers[bi].offset;
  arena_ = o.arena ? o.arena : std::make_shared<Arena>();
  prebuilt_.resize(slot_of_.size());
  values_.resize(slot_of_.size());
  offsets_ = std::move(offset);
  bind_arena();
}

Plan::~Plan() = default;

void Plan::bind_arena() {
  Device dev = device_;
  if (!arena_->storage || static_cast<int64_t>(arena_->storage->nbytes()) < arena_bytes_ ||
      arena_->storage->device() != dev)
    arena_->storage = std::make_shared<Storage>(static_cast<size_t>(std::max<int64_t>(arena_bytes_, 1)), dev);
  bound_ = arena_->storage.get();
  for (auto& [v, off] : offsets_) {
    const Shape& s = shapes_.at(v);
    prebuilt_[static_cast<size_t>(slot_of_.at(v))] = Tensor::make_view(
        arena_->storage, s, contiguous_strides(s), off / static_cast<int64_t>(itemsize(v->dtype)), v->dtype);
  }
  // Outputs of size zero still need a tensor to write nothing into.
  for (auto& s : steps_)
    for (size_t k = 0; k < s.out.size(); ++k) {
      Tensor& t = prebuilt_[static_cast<size_t>(s.out[k])];
      const Value* v = s.node->outputs[k];
      if (!t.defined() && (is_plain_op(*s.node) || (s.node->kind == NodeKind::Op && s.node->op->mutates_inputs())))
        t = Tensor::empty(shapes_.at(v), v->dtype, dev);
    }
}

const Shape& Plan::shape_of(const Value* v) const { return shapes_.at(v); }

void Plan::check_feed(size_t i, const Tensor& t) const {
  const Node& n = *feeds_[i]->producer;
  GLIA_CHECK(t.defined() && !t.is_symbolic(), ValueError, "placeholder '", n.name,
             "': the feed must be a tensor with data");
  GLIA_CHECK(t.dtype() == feeds_[i]->dtype, DTypeError, "placeholder '", n.name, "' expects dtype ",
             name(feeds_[i]->dtype), ", got a feed of dtype ", name(t.dtype()));
  GLIA_CHECK(t.shape() == feed_shapes_[i], ShapeError, "placeholder '", n.name, "' was planned for shape ",
             to_string(feed_shapes_[i]), ", got a feed of shape ", to_string(t.shape()));
}

std::vector<Tensor> Plan::run(const std::vector<Tensor>& feeds, const std::map<const Node*, Tensor>& variables,
                              bool copy_outputs) {
  GLIA_CHECK(feeds.size() == feeds_.size(), ValueError, "plan: expected ", feeds_.size(), " feeds, got ", feeds.size());
  no_grad guard;  // a compiled graph already holds its gradients as nodes
  graph_hook::Suspend eager;
  if (arena_->storage.get() != bound_) {  // another plan sharing the arena grew it
    bind_arena();
    cuda_graph_.reset();  // its recorded addresses are stale
    if (want_graph_) runs_ = 0;
  }
  for (size_t i = 0; i < feeds.size(); ++i) check_feed(i, feeds[i]);
  for (auto& f : graph_.before_run()) f();
  if (cuda_graph_) return replay(feeds, copy_outputs);
  bool record = want_graph_ && runs_ == 1;
  if (record) static_feeds_.clear();
  for (size_t i = 0; i < feeds.size(); ++i) {
    Tensor f = feeds[i].device() == device_ ? feeds[i] : feeds[i].to(device_);
    if (record) {
      Tensor fixed = Tensor::empty(f.shape(), f.dtype(), device_);
      fixed.copy_(f);
      static_feeds_.push_back(fixed);
      f = fixed;
    }
    values_[static_cast<size_t>(slot_of_.at(feeds_[i]))] = f;
  }
  auto work = [&] {
    for (auto& [n, initial] : fresh_) n->tensor.copy_(initial);
    run_steps(variables);
  };
  if (record) {
    try {
      cuda_graph_ = glia::detail::cuda_capture(device_.index, work);
    } catch (const Error& e) {
      // Some kernel cannot be recorded: run kernel by kernel from now on.
      std::fprintf(stderr, "glia: recording a CUDA Graph failed (%s); this plan runs kernel by kernel\n", e.what());
      want_graph_ = false;
      static_feeds_.clear();
    }
  }
  if (cuda_graph_) {
    graph_fetches_.clear();
    for (Value* v : fetches_) graph_fetches_.push_back(values_[static_cast<size_t>(slot_of_.at(v))]);
    for (Tensor& t : values_) t = Tensor();
    return replay(feeds, copy_outputs);  // recording ran nothing: the first replay does the work
  }
  work();
  std::vector<Tensor> fetched;
  for (Value* v : fetches_) fetched.push_back(values_[static_cast<size_t>(slot_of_.at(v))]);
  // Keep nothing alive between runs: not the feeds, nor views of them (a reshaped batch).
  for (Tensor& t : values_) t = Tensor();
  return finish(fetched, copy_outputs);
}

std::vector<Tensor> Plan::replay(const std::vector<Tensor>& feeds, bool copy_outputs) {
  for (size_t i = 0; i < feeds.size(); ++i)
    if (!feeds[i].is_same(static_feeds_[i])) static_feeds_[i].copy_(feeds[i]);
  cuda_graph_->replay();
  return finish(graph_fetches_, copy_outputs);
}

std::vector<Tensor> Plan::finish(const std::vector<Tensor>& fetched, bool copy_outputs) {
  ++runs_;
  std::vector<Tensor> result;
  for (const Tensor& t : fetched) result.push_back(copy_outputs ? t.clone() : t);
  for (auto& f : graph_.after_run()) f();
  return result;
}

void Plan::run_steps(const std::map<const Node*, Tensor>& variables) {
  SmallVec<Tensor, 8> ins;
  SmallVec<Tensor, 4> outs;
  Profile* prof = profile();
  for (Step& s : steps_) {
    Node& n = *s.node;
    auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    switch (n.kind) {
      case NodeKind::Placeholder:
        break;  // set by run
      case NodeKind::Capture:
      case NodeKind::Constant:
        values_[static_cast<size_t>(s.out[0])] = n.tensor;
        break;
      case NodeKind::Variable: {
        auto it = variables.find(&n);
        GLIA_CHECK(it != variables.end(), ValueError, "variable '", n.name, "' has no value in this session");
        GLIA_CHECK(it->second.device() == device_ || (it->second.dim() == 0 && it->second.device().is_cpu()),
                   DeviceError, "variable '", n.name, "' is on ", it->second.device().str(), ", the graph runs on ",
                   device_.str());
        values_[static_cast<size_t>(s.out[0])] = it->second;
        break;
      }
      case NodeKind::Op: {
        ins.clear();
        for (int i : s.in) ins.push_back(values_[static_cast<size_t>(i)]);
        std::span<const Tensor> in_span(ins.data(), ins.size());
        if (n.op->is_view()) {
          values_[static_cast<size_t>(s.out[0])] = n.op->view_fn()(ins[0], n.attrs);
        } else if (n.inplace) {
          run_inplace(*n.op, in_span, n.attrs);
          values_[static_cast<size_t>(s.out[0])] = ins[0];
        } else {
          outs.clear();
          for (int i : s.out) outs.push_back(prebuilt_[static_cast<size_t>(i)]);
          KernelContext kc(*n.op, in_span, std::span<Tensor>(outs.data(), outs.size()), n.attrs);
          // Always a window of this step (empty when too small), never one left from elsewhere.
          const auto& [lo, hi] = scratch_[static_cast<size_t>(&s - steps_.data())];
          glia::detail::ScratchScope scratch(arena_->storage, lo, hi - lo >= kMinScratch ? hi : lo);
          (*s.kernel)(kc);
          for (size_t k = 0; k < s.out.size(); ++k) values_[static_cast<size_t>(s.out[k])] = outs[k];
        }
        if (prof) {
          double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          std::string key = n.op->name() + (n.inplace ? "_" : "") +
                            (n.outputs.empty() ? std::string() : to_string(shapes_[n.outputs[0]]));
          if (n.op->name() == "fused_elementwise") key += "[" + n.attrs.get<std::string>("ops") + "]";
          std::lock_guard<std::mutex> lock(prof->mu);
          auto& r = prof->rows[key];
          r.seconds += dt;
          ++r.calls;
        }
        break;
      }
    }
  }
}

}  // namespace glia::graph
