// Shared by Model::save / load_model and Checkpoint: a model's weights by path, and loading them.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "glia/io/safetensors.h"
#include "glia/model/model.h"

namespace glia::detail {

/// The model's weights (trainable or not) with their paths ("dense_1/kernel"); ValueError naming
/// `fn` when the model is not built.
std::vector<std::pair<std::string, Variable*>> named_weights(Model& m, const char* fn);
/// The weights' values under those paths (detached, sharing the weights' memory).
io::NamedTensors weight_tensors(Model& m, const char* fn);
/// The model's optimizer state (Optimizer::state()) as named tensors; empty when not compiled.
io::NamedTensors optimizer_tensors(const Model& m);
/// Member `member` of the zip read from `path`, parsed as a JSON object (IOError naming the file
/// and member otherwise).
Config parse_json_member(const std::map<std::string, std::string>& members, const std::string& member,
                         const std::string& path);
/// IOError unless metadata.json's format_version is an integer no newer than `newest`.
void check_format_version(const Config& meta, const std::string& path, int newest);
/// Assigns the named tensors to the model's weights: all or nothing (every name and shape is
/// checked before anything is assigned; with check_only, nothing is). `where` names the source in
/// errors.
void assign_weights(Model& m, const io::NamedTensors& tensors, const std::string& where, const char* fn,
                    bool check_only = false);
/// The current time as ISO 8601 UTC ("2026-11-26T21:43:04Z").
std::string utc_now();

}  // namespace glia::detail
