// Reading a call's arguments from JavaScript into plain C++ (fa::ForwardArgs): the TypeScript
// side validated them; what is checked here only keeps a wrong call from reaching the GPU.
#pragma once
#include <napi.h>

#include "forward.h"

namespace addon {

fa::ForwardArgs parseForwardArgs(const Napi::Object& o);

}  // namespace addon
