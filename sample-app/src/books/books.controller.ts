import { Controller, Delete, Get, HttpCode, Inject, Param, Put, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ParseIdPipe } from '../common/parse-id.pipe.js';
import { replyWithReceipt } from '../deletions/deletion-receipt.reply.js';
import type { BookSummary } from './book.views.js';
import { BooksService } from './books.service.js';

@Controller('books')
export class BooksController {
  constructor(@Inject(BooksService) private readonly books: BooksService) {}

  /** `GET /books/:id`: the book, its legal hold and its review count. */
  @Get(':id')
  findOne(@Param('id', ParseIdPipe) id: number): Promise<BookSummary> {
    return this.books.summary(id);
  }

  /**
   * `DELETE /books/:id`: a book's policies are all synchronous (its reviews go with it, set-based),
   * so the answer is 204 once the book and its reviews are gone. 409 with the `blockers` when the
   * book is under legal hold, 404 for an unknown book, 400 for a malformed id.
   */
  @Delete(':id')
  async remove(@Param('id', ParseIdPipe) id: number, @Res() res: Response): Promise<void> {
    replyWithReceipt(res, await this.books.remove(id));
  }

  /** `PUT /books/:id/legal-hold`: from now on neither the book nor its author can be deleted. 204. */
  @Put(':id/legal-hold')
  @HttpCode(204)
  placeLegalHold(@Param('id', ParseIdPipe) id: number): Promise<void> {
    return this.books.setLegalHold(id, true);
  }

  /** `DELETE /books/:id/legal-hold`: lifts the hold. 204. */
  @Delete(':id/legal-hold')
  @HttpCode(204)
  liftLegalHold(@Param('id', ParseIdPipe) id: number): Promise<void> {
    return this.books.setLegalHold(id, false);
  }
}
