// Shared by Model::save / load_model and Checkpoint: a model's weights by path, and loading them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "glia/io/safetensors.h"
#include "glia/model/model.h"

namespace glia::detail {

/// The model's weights (trainable or not) with their paths ("dense_1/kernel"); ValueError naming
/// `fn` when the model is not built.
std::vector<std::pair<std::string, Variable*>> named_weights(Model& m, const char* fn);
/// Assigns the named tensors to the model's weights: all or nothing (every name and shape is
/// checked before anything is assigned; with check_only, nothing is). `where` names the source in
/// errors.
void assign_weights(Model& m, const io::NamedTensors& tensors, const std::string& where, const char* fn,
                    bool check_only = false);
/// The current time as ISO 8601 UTC ("2026-11-26T21:43:04Z").
std::string utc_now();

}  // namespace glia::detail
