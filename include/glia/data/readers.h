// Readers for data files: IDX (the MNIST format) and CSV of numbers. Bad files
// give a glia::IOError naming the path and the problem; they never crash.
#pragma once

#include <string>

#include "glia/core/tensor.h"

namespace glia::data {

/// Reads an IDX file (MNIST's format), raw or gzip-compressed (detected by its magic). The tensor
/// has the file's dims and dtype: uint8, int32 or float32/float64; int8 and int16 widen to int32.
Tensor read_idx(const std::string& path);

struct CsvOptions {
  char delimiter = ',';
  bool header = false;  // skip the first line
  DType dtype = DType::f32;
};

/// Reads a CSV file of numbers into a [rows, cols] tensor. Blank lines are skipped; every row must
/// have the same number of fields. Integer dtypes take integers only, in the dtype's range.
Tensor read_csv(const std::string& path, const CsvOptions& options = {});

/// The bytes of a file, gunzipped when it starts with the gzip magic (IOError when missing,
/// unreadable or corrupt).
std::string read_file_bytes(const std::string& path);

}  // namespace glia::data
