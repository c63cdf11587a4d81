import { Body, Controller, Delete, Get, HttpCode, Inject, Param, ParseIntPipe, Post, Res } from '@nestjs/common';
import type { Response } from 'express';
import { AuthorsService } from './authors.service.js';
import { CreateAuthorDto } from './create-author.dto.js';

@Controller('authors')
export class AuthorsController {
  constructor(@Inject(AuthorsService) private readonly authors: AuthorsService) {}

  @Post()
  create(@Body() body: CreateAuthorDto) {
    return this.authors.create(CreateAuthorDto.parse(body));
  }

  @Get(':id')
  findOne(@Param('id', ParseIntPipe) id: number) {
    return this.authors.findOne(id);
  }

  /** 204 when the whole deletion happened in the request, 202 with a status link when work was queued. */
  @Delete(':id')
  @HttpCode(204)
  async remove(@Param('id', ParseIntPipe) id: number, @Res({ passthrough: true }) res: Response) {
    const receipt = await this.authors.remove(id);
    if (receipt.status === 'pending') {
      res.status(202);
      return { ...receipt, statusUrl: `/deletions/${receipt.requestId}` };
    }
    return undefined;
  }
}
