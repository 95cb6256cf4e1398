// Reading a call's arguments from JavaScript into plain C++ (fa::ForwardArgs): the TypeScript
// side validated them; what is checked here only keeps a wrong call from reaching the GPU.
#pragma once
#include <napi.h>

#include "forward.h"

namespace addon {

fa::ForwardArgs parseForwardArgs(const Napi::Object& o);
fa::DType parseDType(const Napi::Value& v);
std::vector<int> int32ArrayOf(const Napi::Object& o, const char* key);
// args.paged: { blockTable, maxBlocks, blockSize, poolRows } of a KV cache call (after cuSeqlensK).
void parsePaging(const Napi::Object& o, fa::ForwardArgs& a);

}  // namespace addon
