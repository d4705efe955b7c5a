# The asgi worker class as a plugin per CPython minor version: rotor-python3.X.so, compiled
# against that interpreter's headers and linked to its (shared) libpython.

# <major> and <minor> of the interpreter `python`, asked at configure time.
function(rotor_python_version python out_major out_minor)
  execute_process(COMMAND ${python} -c "import sys; print('%d;%d' % sys.version_info[:2])"
                  OUTPUT_VARIABLE version OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT version MATCHES "^[0-9]+;[0-9]+$")
    message(FATAL_ERROR "ROTOR_PYTHONS: cannot run ${python} to ask its version")
  endif()
  list(GET version 0 major)
  list(GET version 1 minor)
  set(${out_major} ${major} PARENT_SCOPE)
  set(${out_minor} ${minor} PARENT_SCOPE)
endfunction()

set(ROTOR_ASK_SYSCONFIG [=[
import sys, sysconfig
v = sysconfig.get_config_var
print(';'.join(str(x) for x in ('%d.%d' % sys.version_info[:2], sysconfig.get_paths()['include'],
      v('LIBDIR'), v('LDLIBRARY'), v('Py_ENABLE_SHARED') or 0, sys.implementation.name)))
]=])

function(rotor_add_python_plugin python)
  execute_process(COMMAND ${python} -c "${ROTOR_ASK_SYSCONFIG}" OUTPUT_VARIABLE answer
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ROTOR_PYTHONS: cannot run ${python} to read its sysconfig")
  endif()
  list(GET answer 0 version)
  list(GET answer 1 include_dir)
  list(GET answer 2 lib_dir)
  list(GET answer 3 ld_library)
  list(GET answer 4 shared)
  list(GET answer 5 implementation)
  set(target rotor-python${version})
  if(NOT implementation STREQUAL "cpython" OR version VERSION_LESS 3.9)
    message(FATAL_ERROR "ROTOR_PYTHONS: ${python} is ${implementation} ${version}; rotor "
                        "embeds CPython 3.9 or later")
  endif()
  if(TARGET ${target})
    message(FATAL_ERROR "ROTOR_PYTHONS: two interpreters of CPython ${version} (${python})")
  endif()
  set(libpython ${lib_dir}/${ld_library})
  if(NOT shared OR NOT ld_library MATCHES "\\.so" OR NOT EXISTS ${libpython})
    message(FATAL_ERROR "ROTOR_PYTHONS: ${python} (CPython ${version}) has no shared libpython "
                        "(LDLIBRARY=${ld_library}, Py_ENABLE_SHARED=${shared}): rotor loads "
                        "Python as a plugin and needs one; rebuild that Python with "
                        "--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")
  endif()
  add_library(${target} MODULE ${ROTOR_ASGI_SRC} ${CMAKE_CURRENT_BINARY_DIR}/bridge_source.cpp
              ${CMAKE_CURRENT_BINARY_DIR}/leak_report_source.cpp)
  target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(${target} SYSTEM PRIVATE ${include_dir})
  target_compile_definitions(${target} PRIVATE ROTOR_VERSION="${PROJECT_VERSION}")
  target_compile_options(${target} PRIVATE ${ROTOR_WARNINGS})
  # rotor's own symbols come from the binary that loads it (ENABLE_EXPORTS there); libuv and
  # spdlog are the binary's shared libraries, linked again for their headers and sonames.
  target_link_libraries(${target} PRIVATE ${libpython} PkgConfig::LIBUV spdlog::spdlog)
  target_include_directories(${target} SYSTEM PRIVATE ${LLHTTP_INCLUDE_DIR})
  target_compile_definitions(${target} PRIVATE LLHTTP_STRICT_MODE=1)
  set_target_properties(${target} PROPERTIES PREFIX "" OUTPUT_NAME ${target}
                        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
                        CXX_VISIBILITY_PRESET default)
  # A libpython outside the linker's default directories (pyenv) is found by its path.
  if(NOT lib_dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
    set_target_properties(${target} PROPERTIES BUILD_RPATH ${lib_dir} INSTALL_RPATH ${lib_dir})
  endif()
  target_link_options(${target} PRIVATE -Wl,-z,now)
  install(TARGETS ${target} LIBRARY DESTINATION lib/rotor)
  set(ROTOR_PLUGIN_TARGETS ${ROTOR_PLUGIN_TARGETS} ${target} PARENT_SCOPE)
endfunction()
