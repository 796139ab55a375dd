promax_plugin_api::export_plugin!(promax_rlmrec_gen::root_module);
