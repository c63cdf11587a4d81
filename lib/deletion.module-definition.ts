import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DeletionModuleOptions } from './interfaces/deletion-module-options.interface.js';

export const {
  ConfigurableModuleClass: ConfigurableDeletionModule,
  MODULE_OPTIONS_TOKEN: DELETION_MODULE_OPTIONS,
  OPTIONS_TYPE: DELETION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: DELETION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DeletionModuleOptions>({ moduleName: 'Deletion' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
