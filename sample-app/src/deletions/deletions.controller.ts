import { Controller, Get, HttpCode, Inject, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { DeletionService, type DeletionStatus } from '../../../lib/index.js';
import { deletionStatusUrl } from './deletion-receipt.reply.js';

@Controller('deletions')
export class DeletionsController {
  constructor(@Inject(DeletionService) private readonly deletions: DeletionService) {}

  /**
   * `GET /deletions/:requestId`, the `statusUrl` of a 202: the state of the deletion (`pending`,
   * `running`, `completed`, `failed`) over its whole tree of requests, progress per relation path,
   * and the errors of failed requests. 404 for an unknown id, 400 for one that is not a UUID.
   */
  @Get(':requestId')
  status(@Param('requestId', ParseUUIDPipe) requestId: string): Promise<DeletionStatus> {
    return this.deletions.status(requestId);
  }

  /**
   * `POST /deletions/:requestId/retry`: resumes the failed requests of a deletion from their
   * stored cursors, once the cause is fixed (a validator refused in the queue because, say, a
   * book was put under legal hold after the 202). Failures are never retried blindly. 202 with
   * the status and its URL; 404 for an unknown id.
   */
  @Post(':requestId/retry')
  @HttpCode(202)
  async retry(@Param('requestId', ParseUUIDPipe) requestId: string): Promise<DeletionStatus & { statusUrl: string }> {
    return { ...(await this.deletions.retry(requestId)), statusUrl: deletionStatusUrl(requestId) };
  }
}
