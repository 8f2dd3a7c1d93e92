# Every user C module of the firmware.
include(${CMAKE_CURRENT_LIST_DIR}/relaygpio/micropython.cmake)
