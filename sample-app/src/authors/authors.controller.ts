import { Body, Controller, DefaultValuePipe, Delete, Get, Inject, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { DeletionPlan } from '../../../lib/index.js';
import { ParseIdPipe } from '../common/parse-id.pipe.js';
import { ParseBoundedIntPipe } from '../common/parse-bounded-int.pipe.js';
import { replyWithReceipt } from '../deletions/deletion-receipt.reply.js';
import type { AuthorSummary, BookLine, CreatedAuthor } from './author.views.js';
import { AuthorsService } from './authors.service.js';
import { CreateAuthorDto } from './create-author.dto.js';

@Controller('authors')
export class AuthorsController {
  constructor(@Inject(AuthorsService) private readonly authors: AuthorsService) {}

  /**
   * `POST /authors`: an author with a profile, `books` books of `reviewsPerBook` reviews each,
   * `followers` followers and `articles` articles (for demos and benchmarks). 201 with the counts.
   */
  @Post()
  create(@Body() body: unknown): Promise<CreatedAuthor> {
    return this.authors.create(CreateAuthorDto.parse(body));
  }

  /** `GET /authors/:id`: the author and its row counts; 404 once its deletion has started. */
  @Get(':id')
  findOne(@Param('id', ParseIdPipe) id: number): Promise<AuthorSummary> {
    return this.authors.summary(id);
  }

  /** `GET /authors/:id/books?after=&limit=`: a page of its books by id (`limit` 1-100, default 20). */
  @Get(':id/books')
  books(
    @Param('id', ParseIdPipe) id: number,
    @Query('after', new DefaultValuePipe('0'), new ParseBoundedIntPipe(0, Number.MAX_SAFE_INTEGER)) after: number,
    @Query('limit', new DefaultValuePipe('20'), new ParseBoundedIntPipe(1, 100)) limit: number,
  ): Promise<BookLine[]> {
    return this.authors.books(id, { after, limit });
  }

  /**
   * `GET /authors/:id/deletion-plan`: what `DELETE` would do, writing nothing: per relation path
   * its policy, `now` or `later`, the row count and the blockers, and whether it is `allowed`.
   */
  @Get(':id/deletion-plan')
  plan(@Param('id', ParseIdPipe) id: number): Promise<DeletionPlan> {
    return this.authors.plan(id);
  }

  /**
   * `DELETE /authors/:id`. The author is tombstoned, so its books and followers always go in the
   * queue: 202 with `requestId` and `statusUrl` (also `Location`). A deletion that happened
   * entirely in the request would be a 204. 409 with the `blockers` when a validator refuses (a
   * book under legal hold, a running contract): nothing is deleted. 404 for an unknown author,
   * 400 for a malformed id.
   */
  @Delete(':id')
  async remove(@Param('id', ParseIdPipe) id: number, @Res() res: Response): Promise<void> {
    replyWithReceipt(res, await this.authors.remove(id));
  }
}
