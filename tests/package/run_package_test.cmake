# Installs headnet from HEADNET_BINARY_DIR into WORK_DIR/prefix, then builds and runs
# consumer/ (find_package) and subdirectory_consumer/ (add_subdirectory). Any failure is fatal.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "command failed (${code}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(here ${CMAKE_CURRENT_LIST_DIR})
file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${HEADNET_BINARY_DIR} --prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${here}/consumer -B ${WORK_DIR}/find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/find_package)
run(${WORK_DIR}/find_package/consumer)
if(EXISTS ${WORK_DIR}/find_package/dist_consumer)
  run(${CMAKE_COMMAND} -E env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0
      ${WORK_DIR}/find_package/dist_consumer)
endif()
run(${CMAKE_COMMAND} -S ${here}/subdirectory_consumer -B ${WORK_DIR}/add_subdirectory
    -DHEADNET_SOURCE_DIR=${HEADNET_SOURCE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/add_subdirectory)
run(${WORK_DIR}/add_subdirectory/consumer)
