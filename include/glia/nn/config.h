// Configs: the JSON that describes a layer, optimizer or model (Keras's get_config()),
// and the by-name registries that rebuild objects from it.
#pragma once

#include <nlohmann/json.hpp>

namespace glia {

/// Ordered JSON (keys keep their order, like Keras's config dicts).
using Config = nlohmann::ordered_json;

}  // namespace glia
