// uvicorn's spellings of what rotor has under gunicorn's names, rewritten before the command
// line is parsed so that a uvicorn command line starts too: where to listen (--host, --port,
// --uds, --fd become --bind) and the access log switch (--access-log is --access-logfile -,
// --no-access-log turns it off).
#pragma once

#include <string>
#include <vector>

namespace rotor::conf {

// Rewrites `args` in place; returns the problem as one line, or "" when there is none.
// As uvicorn: --uds wins over --fd, which wins over --host/--port; --host alone listens on port
// 8000 and --port alone on 127.0.0.1.
std::string rewrite_uvicorn_flags(std::vector<std::string>& args);

}  // namespace rotor::conf
