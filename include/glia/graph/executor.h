// The planned executor: a graph compiled for concrete input shapes runs its kernels in order,
// with every intermediate in a slot of one arena assigned by liveness, so that running a plan
// again allocates nothing for its intermediates.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "glia/graph/graph.h"

namespace glia::detail {
class CudaGraph;
}

namespace glia::graph {

/// The memory that holds a plan's intermediates. Plans that never run at the same time (those of
/// one function or one session) share one, sized for the largest.
struct Arena {
  std::shared_ptr<Storage> storage;
};

struct PlanOptions {
  /// Run every node with side effects (in-place updates), fetched or not (traced functions do;
  /// a Session runs only what its fetches and targets need).
  bool run_all_side_effects = false;
  /// Shared with other plans (null: a plan of its own).
  std::shared_ptr<Arena> arena = nullptr;
  /// Where the kernels run and the arena lives. Unset: the device of the graph's captured tensors
  /// (a model's weights), else the CPU. On a GPU, constants made while tracing move there once.
  std::optional<Device> device = std::nullopt;
  /// On a GPU, record the second run into a CUDA Graph and replay it from the third on: one launch
  /// per run instead of one per kernel. Feeds are copied into fixed buffers first. Plans whose graph
  /// reads CPU tensors at run time, or whose recording fails, run kernel by kernel as before.
  bool cuda_graph = false;
};

class Plan {
 public:
  /// Plans the nodes of `g` that `fetches` and `targets` need, for feeds of these concrete shapes.
  Plan(Graph& g, std::vector<Value*> feeds, const std::vector<Shape>& feed_shapes, std::vector<Value*> fetches,
       std::vector<Value*> targets = {}, PlanOptions o = {});
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  /// Runs with the feeds (in the planned order; shapes and dtypes checked). `variables` maps
  /// variable nodes to their current tensors (updated in place). With copy_outputs, the results
  /// are fresh tensors; otherwise they may alias the arena and are valid until the next run.
  std::vector<Tensor> run(const std::vector<Tensor>& feeds, const std::map<const Node*, Tensor>& variables = {},
                          bool copy_outputs = true);

  /// Bytes of the arena this plan needs for its intermediates.
  int64_t arena_bytes() const { return arena_bytes_; }
  /// Bytes the intermediates would take without sharing slots (for comparison).
  int64_t unshared_bytes() const { return unshared_bytes_; }
  /// Number of nodes run per call.
  size_t num_steps() const { return steps_.size(); }
  /// Concrete shape of a value in this plan.
  const Shape& shape_of(const Value* v) const;
  /// Where the plan runs.
  Device device() const { return device_; }
  /// Whether runs replay a recorded CUDA Graph now.
  bool replays_cuda_graph() const { return cuda_graph_ != nullptr; }
  /// While replaying: the recorded graph's input buffers, one per feed. A run given these very
  /// tensors as feeds copies nothing into them (the caller has written the batch there).
  const std::vector<Tensor>& static_feeds() const { return static_feeds_; }

 private:
  struct Step {
    Node* node = nullptr;
    const KernelFn* kernel = nullptr;
    std::vector<int> in;   // value slots
    std::vector<int> out;  // value slots
  };
  void check_feed(size_t i, const Tensor& t) const;
  /// Runs the steps (the work a CUDA Graph records).
  void run_steps(const std::map<const Node*, Tensor>& variables);
  std::vector<Tensor> replay(const std::vector<Tensor>& feeds, bool copy_outputs);
  /// Counts the run, returns the fetched tensors (copies with copy_outputs), runs the after-run hooks.
  std::vector<Tensor> finish(const std::vector<Tensor>& fetched, bool copy_outputs);
  /// Makes the output views over the arena's current storage (growing it if it is too small).
  void bind_arena();

  Graph& graph_;
  std::vector<Value*> feeds_, fetches_;
  std::vector<Shape> feed_shapes_;
  std::vector<Step> steps_;
  std::map<const Value*, int> slot_of_;
  std::map<const Value*, Shape> shapes_;
  std::vector<Tensor> prebuilt_;  // per slot: an arena view for op outputs, else undefined
  std::shared_ptr<Arena> arena_;
  const Storage* bound_ = nullptr;
  std::map<const Value*, int64_t> offsets_;      // byte offset of each arena buffer
  std::vector<std::pair<Node*, Tensor>> fresh_;  // constants reset to their initial value per run
  int64_t arena_bytes_ = 0, unshared_bytes_ = 0;
  std::vector<Tensor> values_;  // per slot, reused across runs
  Device device_ = Device::cpu();
  // CUDA Graph replay: wanted, possible, runs so far, the recording, and what it reads and writes.
  bool want_graph_ = false;
  int64_t runs_ = 0;
  std::unique_ptr<glia::detail::CudaGraph> cuda_graph_;
  std::vector<Tensor> static_feeds_, graph_fetches_;
  // Per step: the largest stretch [begin, end) of the arena free while it runs, where its kernel's
  // temporaries go (detail::ScratchScope; the CUDA convolutions ask for them).
  std::vector<std::pair<int64_t, int64_t>> scratch_;
};

}  // namespace glia::graph
