# CMake-based ports (rp2): the same core and binding with the pico-sdk backend.
add_library(usermod_relaygpio INTERFACE)

target_sources(usermod_relaygpio INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modrelaygpio.c
    ${CMAKE_CURRENT_LIST_DIR}/relay_core.c
    ${CMAKE_CURRENT_LIST_DIR}/hw_rp2.c
)

target_include_directories(usermod_relaygpio INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_relaygpio)
