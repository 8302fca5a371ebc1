# The sample configuration stays in step with the configuration table.
bt_add_unit_test(NAME test_cfg_sample SOURCES test_cfg_sample.c LIBS bt_cfg TIMEOUT 30)
target_compile_definitions(test_cfg_sample PRIVATE
  BATON_SAMPLE_CONF="${PROJECT_SOURCE_DIR}/deploy/baton.conf")
