# bt_nnsend: a nanomsg NN_REQ client for the Python integration tests (which
# cannot open an SP socket themselves): send one message and print the reply
# as hex, or open and drop many connections (--flood). See nnsend.c.
add_executable(bt_nnsend ${CMAKE_CURRENT_LIST_DIR}/nnsend.c)
target_link_libraries(bt_nnsend PRIVATE PkgConfig::NANOMSG)
