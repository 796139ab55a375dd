promax_plugin_api::export_plugin!(promax_promax::root_module);
