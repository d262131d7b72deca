# Runs Doxygen on the configured Doxyfile and fails when it printed any warning: the public API
# (everything outside `detail` namespaces) must be documented.
#   cmake -DDOXYGEN=... -DDOXYFILE=... -DWARNINGS=... -P run_doxygen.cmake
file(REMOVE "${WARNINGS}")
execute_process(COMMAND "${DOXYGEN}" "${DOXYFILE}" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "doxygen failed (exit ${result})")
endif()
file(READ "${WARNINGS}" warnings)
if(NOT warnings STREQUAL "")
  message(FATAL_ERROR "the API reference has Doxygen warnings (each public item needs a /// line):\n${warnings}")
endif()
get_filename_component(out "${WARNINGS}" DIRECTORY)
message(STATUS "API reference: ${out}/html/index.html (no warnings)")
