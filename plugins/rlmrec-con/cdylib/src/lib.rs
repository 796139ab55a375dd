promax_plugin_api::export_plugin!(promax_rlmrec_con::root_module);
