// Dataset: an input pipeline in the style of tf.data (from_tensors, shuffle,
// batch, map, repeat, take, skip, prefetch) whose passes are iterated with a
// range-for, one pass per epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "glia/core/tensor.h"

namespace glia::data {

/// One element of a dataset: its components, e.g. {x, y}.
using Element = std::vector<Tensor>;

/// prefetch(AUTOTUNE) picks the buffer size (tf.data.AUTOTUNE).
inline constexpr int64_t AUTOTUNE = -1;
/// What cardinality() returns for a dataset that never ends (tf.data.INFINITE_CARDINALITY).
inline constexpr int64_t INFINITE_CARDINALITY = -1;

namespace detail {

/// The state of one pass over a dataset. Elements whose components are rows of
/// fixed tensors can also be produced as row numbers, so that batch() gathers
/// rows in one copy instead of stacking element by element.
class PassIterator {
 public:
  virtual ~PassIterator() = default;
  /// The next element into `out`; false at the end of the pass.
  virtual bool next(Element& out) = 0;
  /// The tensors whose rows this pass produces, or null when it does not produce rows.
  virtual const Element* rows() const { return nullptr; }
  /// The next row number (only when rows() is not null); false at the end of the pass.
  virtual bool next_row(int64_t& row);
};

/// A node of the pipeline graph: immutable, shared by the datasets built on it.
class DatasetNode {
 public:
  virtual ~DatasetNode() = default;
  /// Starts a new pass (a new epoch).
  virtual std::unique_ptr<PassIterator> start() const = 0;
  /// The number of elements of a pass: INFINITE_CARDINALITY, or nullopt when unknown.
  virtual std::optional<int64_t> cardinality() const = 0;
  /// Appends the node's pass counters (shuffle nodes: passes started so far) and its upstream's.
  virtual void save_passes(std::vector<uint64_t>& /*out*/) const {}
  /// Sets them back from `in`, in the order save_passes wrote them, advancing `pos`.
  virtual void restore_passes(const std::vector<uint64_t>& /*in*/, size_t& /*pos*/) const {}
};

}  // namespace detail

/// A pipeline of elements. Cheap to copy (copies share the pipeline); each
/// transformation returns a new Dataset and leaves this one unchanged.
///
///   auto ds = Dataset::from_tensors({x, y}).shuffle(60000).batch(128).prefetch();
///   for (int epoch = 0; epoch < 5; ++epoch)
///     for (const auto& batch : ds) step(batch[0], batch[1]);
class Dataset {
 public:
  using MapFn = std::function<Element(Element)>;

  /// The slices of the tensors along dim 0 (tf.data.Dataset.from_tensor_slices): element i is
  /// {ts[0][i], ts[1][i], ...}. All tensors must have the same first dimension. The data is
  /// held as contiguous detached tensors (a copy only when a tensor is not contiguous).
  static Dataset from_tensors(std::vector<Tensor> ts);
  /// The same as from_tensors (tf.data's name).
  static Dataset from_tensor_slices(std::vector<Tensor> ts) { return from_tensors(std::move(ts)); }

  /// Randomly shuffles with a buffer of `buffer_size` elements, as tf.data: a buffer as large as the
  /// dataset gives a uniform permutation. Without a seed, one is drawn from the global generator now
  /// (so glia::manual_seed repeats runs). With reshuffle_each_iteration, each pass has a new order.
  Dataset shuffle(int64_t buffer_size, std::optional<uint64_t> seed = {}, bool reshuffle_each_iteration = true) const;
  /// Stacks `n` consecutive elements into one (a new leading dimension); the last batch is smaller
  /// unless drop_remainder. With pin_memory, the batches of CPU tensors are made in page-locked
  /// memory (cuda::empty_pinned), so that their copies to a GPU run asynchronously with no further
  /// copy (PyTorch's DataLoader(pin_memory=True)); that needs a GPU (DeviceError here otherwise).
  Dataset batch(int64_t n, bool drop_remainder = false, bool pin_memory = false) const;
  /// Applies fn to each element (without recording gradients).
  Dataset map(MapFn fn) const;
  /// Repeats the dataset `count` times (-1: forever). Each repetition is a new pass of this dataset.
  Dataset repeat(int64_t count = -1) const;
  /// The first n elements (-1: all).
  Dataset take(int64_t n) const;
  /// All but the first n elements (-1: none).
  Dataset skip(int64_t n) const;
  /// Produces up to `buffer` elements ahead on a background thread, so that the next batch is ready
  /// when the training step ends. An exception in the pipeline reaches the loop at the element where
  /// it happened.
  Dataset prefetch(int64_t buffer = 2) const;

  /// The number of elements of a pass when it can be computed without iterating:
  /// INFINITE_CARDINALITY for a dataset that never ends, nullopt when unknown.
  std::optional<int64_t> cardinality() const { return node_->cardinality(); }

  /// How many passes each reshuffling shuffle() in the pipeline has started: with the seeds (fixed
  /// when the pipeline was built), this decides the order of every later pass. A resumed training
  /// run restores it so that its next pass has the order the interrupted run would have had.
  std::vector<uint64_t> shuffle_state() const;
  /// Restores shuffle_state() (ValueError if it comes from a pipeline with another number of
  /// shuffles).
  void set_shuffle_state(const std::vector<uint64_t>& state) const;

  /// An input iterator over one pass.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Element;
    using difference_type = std::ptrdiff_t;
    using pointer = const Element*;
    using reference = const Element&;

    iterator() = default;
    const Element& operator*() const { return current_; }
    const Element* operator->() const { return &current_; }
    iterator& operator++();
    void operator++(int) { ++*this; }
    /// Only the end of a pass compares equal to end().
    bool operator==(const iterator& o) const { return done() && o.done(); }

   private:
    friend class Dataset;
    iterator(std::shared_ptr<const detail::DatasetNode> node, std::shared_ptr<detail::PassIterator> pass);
    bool done() const { return pass_ == nullptr; }
    std::shared_ptr<const detail::DatasetNode> node_;  // keeps the pipeline alive while its pass runs
    std::shared_ptr<detail::PassIterator> pass_;
    Element current_;
  };

  /// Starts a new pass (a new epoch: a reshuffle where asked).
  iterator begin() const;
  iterator end() const { return {}; }

  explicit Dataset(std::shared_ptr<const detail::DatasetNode> node) : node_(std::move(node)) {}
  const std::shared_ptr<const detail::DatasetNode>& node() const { return node_; }

 private:
  std::shared_ptr<const detail::DatasetNode> node_;
};

}  // namespace glia::data
