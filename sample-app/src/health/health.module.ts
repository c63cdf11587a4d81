import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DeletionHealthModule } from '../../../lib/health/index.js';
import { HealthController } from './health.controller.js';

@Module({ imports: [TerminusModule, DeletionHealthModule], controllers: [HealthController] })
export class HealthModule {}
