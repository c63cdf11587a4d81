import { Module } from '@nestjs/common';
import { DeletionsController } from './deletions.controller.js';

/** The status side of queued deletions; `DeletionService` comes from the global `DeletionModule`. */
@Module({ controllers: [DeletionsController] })
export class DeletionsModule {}
